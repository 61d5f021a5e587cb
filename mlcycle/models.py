"""Model families, their preprocessing, and the safe on-disk bundle.

Every candidate is one scikit-learn ``Pipeline(prep, model)`` whose preprocessing (impute, scale,
one-hot) is fitted on the training split only. On disk a bundle is a directory:

- ``preprocessor.skops``: the fitted ColumnTransformer (skops, loaded with a short allow-list),
- ``estimator.skops`` (scikit-learn) or ``estimator.ubj`` (XGBoost booster, native UBJ format),
- ``bundle.json`` (``mlcycle.schema.BundleSpec``): family, task, feature lists, classes, decision threshold,
  params and the sha256 of both files. Loading verifies every sha256 before deserializing anything (once: a
  model version's files are verified by its reader, ``mlcycle.schema.read_version``).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.errors import ConfigError, IntegrityError, ModelError
from mlcycle.fsutil import atomic_path, sha256_file
from mlcycle.metrics import apply_threshold, score_bundle
from mlcycle.schema import BundleSpec, VersionFiles, read_bundle, write_bundle

FAMILIES = ("baseline", "logreg", "hgb", "xgboost")
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
        parts.append(
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)
        )
    if categorical:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=True)


# Every family's hyperparameters with their defaults: what a bundle records as its params is the merge of
# these with the search's choice, so a model's params are its real ones.
_HGB = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0}
_XGB = {
    "n_estimators": 300,
    "learning_rate": 0.08,
    "max_depth": 5,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 1,
}
FAMILY_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("baseline", "classification"): {"strategy": "prior"},
    ("baseline", "regression"): {"strategy": "mean"},
    ("logreg", "classification"): {"C": 1.0},
    ("logreg", "regression"): {"alpha": 1.0},  # Ridge: the linear family for regression
    ("hgb", "classification"): _HGB,
    ("hgb", "regression"): _HGB,
    ("xgboost", "classification"): _XGB,
    ("xgboost", "regression"): _XGB,
}


def check_families(families: list[str]) -> list[str]:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        import difflib

        hints = "".join(
            f" ('{u}': did you mean {m[0]}?)" for u in unknown if (m := difflib.get_close_matches(u, FAMILIES, n=1))
        )
        raise ConfigError(
            f"unknown or no model families {unknown or families}; choose from {', '.join(FAMILIES)}{hints}"
        )
    return list(families)


def effective_params(family: str, task: str, params: dict | None = None) -> dict[str, Any]:
    """The family's full hyperparameters: its defaults overridden by ``params`` (unknown names refused)."""
    check_families([family])
    defaults = FAMILY_DEFAULTS[(family, task)]
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ModelError(
            f"{family} ({task}) has no hyperparameter(s) {', '.join(unknown)}; it takes {', '.join(defaults)}"
        )
    return {**defaults, **(params or {})}


def build_estimator(family: str, task: str, seed: int, params: dict | None = None):
    params = effective_params(family, task, params)
    classification = task == "classification"
    if family == "baseline":
        from sklearn.dummy import DummyClassifier, DummyRegressor

        return DummyClassifier(**params) if classification else DummyRegressor(**params)
    if family == "logreg":
        from sklearn.linear_model import LogisticRegression, Ridge

        return LogisticRegression(max_iter=2000, random_state=seed, **params) if classification else Ridge(**params)
    if family == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        return cls(random_state=seed, early_stopping=False, **params)
    from xgboost import XGBClassifier, XGBRegressor

    cls = XGBClassifier if classification else XGBRegressor
    return cls(tree_method="hist", random_state=seed, n_jobs=os.cpu_count() or 1, **params)


def build_pipeline(family: str, contract: DataContract, seed: int, params: dict | None = None):
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [("prep", build_preprocessor(contract)), ("model", build_estimator(family, contract.task, seed, params))]
    )


def encode_labels(y: np.ndarray, contract: DataContract) -> np.ndarray:
    """Classification labels as indices into ``contract.classes`` (XGBoost needs 0..k-1); regression unchanged.

    Every family is fitted on the indices, so a bundle's class order is always the contract's."""
    if contract.task != "classification":
        return y
    index = {c: i for i, c in enumerate(contract.classes or [])}
    try:
        return np.fromiter((index[_plain(v)] for v in y), dtype=np.int64, count=len(y))
    except KeyError as e:
        raise ModelError(f"label value {e.args[0]!r} is not one of the contract's classes {contract.classes}") from None


def split_xy(frame: pd.DataFrame, contract: DataContract) -> tuple[pd.DataFrame, np.ndarray]:
    return model_input(frame, contract.feature_names), frame[contract.label].to_numpy()


def model_input(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns as the preprocessor takes them: a missing string value is NaN, whether it came as None
    (Parquet, JSON null, the codec) or NaN (CSV). SimpleImputer(missing_values=NaN) does not see None, which
    OneHotEncoder would otherwise learn as a category of its own (and the fast replay would not)."""
    x = frame[features]
    fix = [c for c in features if not pd.api.types.is_numeric_dtype(x[c]) and x[c].isna().any()]
    if not fix:
        return x
    x = x.copy()
    for c in fix:
        x[c] = x[c].astype(object).where(x[c].notna(), np.nan)
    return x


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
    training: dict = field(default_factory=dict)  # seed, and how the decision threshold was chosen

    @classmethod
    def fit(
        cls, family: str, frame: pd.DataFrame, contract: DataContract, seed: int, params: dict | None = None
    ) -> "ModelBundle":
        """Fit ``Pipeline(prep, model)`` on ``frame`` (labels encoded as class indices); params recorded in full."""
        x, y = split_xy(frame, contract)
        pipeline = build_pipeline(family, contract, seed, params).fit(x, encode_labels(y, contract))
        est = pipeline.named_steps["model"]
        classes = (
            [(contract.classes or [])[int(i)] for i in est.classes_] if contract.task == "classification" else None
        )
        return cls(
            family,
            contract.task,
            contract.feature_names,
            pipeline.named_steps["prep"],
            est,
            classes,
            0.5,
            effective_params(family, contract.task, params),
            {"seed": seed},
        )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.transform(model_input(frame, self.features))

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Classification: probability of each class (n, k); regression: predictions (n,)."""
        return self.score_matrix(self.transform(frame))

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        """Score already-preprocessed rows (the serving path calls this after its fast transform)."""
        if self.family == "xgboost" and _is_booster(self.estimator):
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
        return apply_threshold(scores, self.classes or [], self.threshold)

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
            write_bundle(
                tmp,
                BundleSpec(
                    family=self.family,
                    task=self.task,
                    features=self.features,
                    classes=self.classes,
                    threshold=self.threshold,
                    params=self.params,
                    training=self.training,
                    estimator_file=est_file,
                    sha256=files,
                ),
            )
        return files

    @classmethod
    def load(cls, directory: Path, nthread: int | None = None) -> "ModelBundle":
        """A bundle directory: verify every file's sha256, then deserialize with the skops allow-list / XGBoost UBJ."""
        directory = Path(directory)
        return cls.from_spec(directory, read_bundle(directory), nthread)

    @classmethod
    def from_version(cls, version: VersionFiles, nthread: int | None = None) -> "ModelBundle":
        """The bundle of a model version its reader has verified (no file is hashed again)."""
        return cls.from_spec(version.directory, version.bundle, nthread)

    @classmethod
    def from_spec(cls, directory: Path, spec: BundleSpec, nthread: int | None = None) -> "ModelBundle":
        """Deserialize the files ``spec`` describes; the caller has verified them against it."""
        directory = Path(directory)
        preprocessor = _skops_load(directory / "preprocessor.skops")
        if spec.estimator_file == "estimator.ubj":
            import xgboost as xgb

            estimator = xgb.Booster()
            estimator.load_model(directory / "estimator.ubj")
            estimator.set_param({"nthread": nthread or 1})
        else:
            estimator = _skops_load(directory / spec.estimator_file)
        return cls(
            spec.family,
            spec.task,
            spec.features,
            preprocessor,
            estimator,
            spec.classes,
            spec.threshold,
            spec.params,
            spec.training,
        )


def set_decision(directory: Path, threshold: float, training: dict) -> None:
    """Record a bundle's decision threshold and how it was chosen (bundle.json only: the checksummed model files are untouched)."""
    spec = read_bundle(directory, verify=False)
    updated = BundleSpec.model_validate({**spec.model_dump(), "threshold": threshold, "training": training})
    write_bundle(directory, updated)


def _skops_load(path: Path):
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - set(SKOPS_TRUSTED))
    if refused:
        raise IntegrityError(f"{path} contains types outside the reviewed allow-list: {', '.join(refused)}")
    return sio.load(path, trusted=list(untrusted))


def _is_booster(estimator) -> bool:
    import xgboost as xgb

    return isinstance(estimator, xgb.Booster)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def fit_bundle(
    family: str, train: pd.DataFrame, val: pd.DataFrame, contract: DataContract, seed: int, params: dict | None = None
) -> tuple[ModelBundle, dict[str, float]]:
    """Fit one family on ``train`` and score it on ``val`` (decision threshold 0.5: the tune step chooses the
    real one on out-of-fold predictions, see mlcycle.thresholds)."""
    bundle = ModelBundle.fit(family, train, contract, seed, params)
    return bundle, score_bundle(bundle, val, contract.label)
