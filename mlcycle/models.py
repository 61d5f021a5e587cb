"""Model families, their preprocessing, and the safe on-disk bundle.

Every candidate is one scikit-learn ``Pipeline(prep, model)`` whose preprocessing (impute, scale,
one-hot) is fitted on the training split only. On disk a bundle is a directory:

- ``preprocessor.skops``: the fitted ColumnTransformer (skops, loaded with a short allow-list),
- ``estimator.skops`` (scikit-learn) or ``estimator.ubj`` (XGBoost booster, native UBJ format),
- ``bundle.json``: family, task, feature lists, classes, decision threshold, params and the
  sha256 of both files. Loading verifies every sha256 before deserializing anything.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.errors import IntegrityError, ModelError
from mlcycle.fsutil import atomic_path, read_manifest, sha256_file, verify_checksums

FAMILIES = ("baseline", "logreg", "hgb", "xgboost")
BUNDLE_FILE = "bundle.json"
# Types skops may instantiate beyond its own defaults. Reviewed list: keep it short.
SKOPS_TRUSTED = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def build_preprocessor(contract: DataContract):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c.name for c in contract.features if c.kind == "numeric"]
    categorical = [c.name for c in contract.features if c.kind == "categorical"]
    parts = []
    if numeric:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric))
    if categorical:
        parts.append(("cat", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)),
        ]), categorical))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=True)


def build_estimator(family: str, task: str, seed: int, params: dict | None = None):
    params = dict(params or {})
    classification = task == "classification"
    if family == "baseline":
        from sklearn.dummy import DummyClassifier, DummyRegressor

        return DummyClassifier(strategy="prior") if classification else DummyRegressor(strategy="mean")
    if family == "logreg":
        from sklearn.linear_model import LogisticRegression, Ridge

        if classification:
            return LogisticRegression(max_iter=2000, random_state=seed, **params)
        return Ridge(alpha=1.0 / params.get("C", 1.0))
    if family == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        return cls(random_state=seed, early_stopping=False, **{"max_iter": 200, **params})
    if family == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        cls = XGBClassifier if classification else XGBRegressor
        defaults = {"n_estimators": 300, "learning_rate": 0.08, "max_depth": 5, "subsample": 0.9, "colsample_bytree": 0.9}
        return cls(tree_method="hist", random_state=seed, n_jobs=os.cpu_count() or 1, **{**defaults, **params})
    raise ModelError(f"unknown model family '{family}'; choose from {', '.join(FAMILIES)}")


def build_pipeline(family: str, contract: DataContract, seed: int, params: dict | None = None):
    from sklearn.pipeline import Pipeline

    return Pipeline([("prep", build_preprocessor(contract)), ("model", build_estimator(family, contract.task, seed, params))])


def split_xy(frame: pd.DataFrame, contract: DataContract) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[contract.feature_names], frame[contract.label].to_numpy()


@dataclass
class ModelBundle:
    """A fitted model ready to score DataFrames; the same object serves training and serving."""

    family: str
    task: str
    features: list[str]
    preprocessor: Any
    estimator: Any
    classes: list | None = None
    threshold: float = 0.5
    params: dict = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, family: str, pipeline, contract: DataContract, threshold: float = 0.5, params: dict | None = None) -> "ModelBundle":
        est = pipeline.named_steps["model"]
        classes = [_plain(c) for c in est.classes_] if hasattr(est, "classes_") else None
        return cls(family, contract.task, contract.feature_names, pipeline.named_steps["prep"], est, classes, threshold, dict(params or {}))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.transform(frame[self.features])

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Classification: probability of each class (n, k); regression: predictions (n,)."""
        return self.score_matrix(self.transform(frame))

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        """Score already-preprocessed rows (the serving path calls this after its fast transform)."""
        if self.family == "xgboost" and not hasattr(self.estimator, "predict_proba"):
            return self._booster_scores(x)
        if self.task == "classification":
            return self.estimator.predict_proba(x)
        return self.estimator.predict(x)

    def _booster_scores(self, x: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.estimator.inplace_predict(np.ascontiguousarray(x, dtype=np.float32)))
        if self.task == "regression":
            return raw
        if raw.ndim == 1:
            return np.column_stack([1.0 - raw, raw])
        return raw

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        scores = self.score(frame)
        if self.task == "regression":
            return scores
        if len(self.classes) == 2:
            return np.where(scores[:, 1] >= self.threshold, self.classes[1], self.classes[0])
        return np.asarray(self.classes)[scores.argmax(axis=1)]

    def save(self, directory: Path) -> dict[str, str]:
        """Write the bundle atomically; returns {file name: sha256}."""
        import skops.io as sio

        with atomic_path(Path(directory)) as tmp:
            tmp.mkdir(parents=True)
            sio.dump(self.preprocessor, tmp / "preprocessor.skops")
            if self.family == "xgboost":
                booster = self.estimator.get_booster() if hasattr(self.estimator, "get_booster") else self.estimator
                booster.save_model(tmp / "estimator.ubj")
                est_file = "estimator.ubj"
            else:
                sio.dump(self.estimator, tmp / "estimator.skops")
                est_file = "estimator.skops"
            files = {name: sha256_file(tmp / name) for name in ("preprocessor.skops", est_file)}
            meta = {
                "family": self.family, "task": self.task, "features": self.features, "classes": self.classes,
                "threshold": self.threshold, "params": self.params, "estimator_file": est_file, "sha256": files,
            }
            (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return files

    @classmethod
    def load(cls, directory: Path, nthread: int | None = None) -> "ModelBundle":
        """Verify every file's sha256, then deserialize with the skops allow-list / XGBoost UBJ."""

        directory = Path(directory)
        meta = read_manifest(directory / BUNDLE_FILE)
        verify_checksums(directory, meta["sha256"])
        preprocessor = _skops_load(directory / "preprocessor.skops")
        if meta["estimator_file"] == "estimator.ubj":
            import xgboost as xgb

            estimator = xgb.Booster()
            estimator.load_model(directory / "estimator.ubj")
            estimator.set_param({"nthread": nthread or 1})
        else:
            estimator = _skops_load(directory / meta["estimator_file"])
        return cls(meta["family"], meta["task"], meta["features"], preprocessor, estimator, meta["classes"], meta["threshold"], meta["params"])


def _skops_load(path: Path):
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - set(SKOPS_TRUSTED))
    if refused:
        raise IntegrityError(f"{path} contains types outside the reviewed allow-list: {', '.join(refused)}")
    return sio.load(path, trusted=list(untrusted))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
