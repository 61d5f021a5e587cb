"""Drift statistics behind one small interface, with two backends.

- ``alibi`` (default): alibi-detect ``TabularDrift`` — Kolmogorov-Smirnov per numeric feature,
  chi-squared per categorical feature, Bonferroni correction — saved with ``save_detector``.
- ``scipy``: the same tests with scipy.stats, for users who cannot run alibi-detect in production
  (it has been under the Business Source License since 2024).

Both also report PSI per feature (the seed documents' metric). Features are encoded the same way
for both, with the model's own imputation semantics (``mlcycle.models.build_preprocessor``), so a
window is tested on what the model sees:

- numeric: float, a missing value replaced by the model imputer's fill value. ``build`` is given the
  training split, the very rows the model's preprocessor is fitted on, and fits the same
  preprocessor on them, so the fill values *are* the model's ``SimpleImputer.statistics_`` (the
  training-split median), not the reference sample's median (tests/unit/test_drift_stats.py checks
  them against a trained bundle's). A rise in missing values shows as mass at the fill value, the
  way the model sees it.
- categorical: the index of the training category; a missing value (None or NaN) its own bucket,
  as the model imputes it to its own ``__missing__`` category; an unseen category another bucket
  (all-zero to the model's one-hot encoder). Through the server, unseen categories never reach a
  window: the predictor's codec refuses them, in the detector as in the predictor.

Detectors saved before this (config ``medians``: reference-sample medians) still load and say so
in ``fill_source``.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.contract import DataContract
from mlcycle.errors import MlcycleError
from mlcycle import defaults

PSI_EPS = 1e-4
BACKENDS = ("alibi", "scipy")


@dataclass
class DriftReport:
    is_drift: bool
    n: int
    threshold: float
    p_values: dict[str, float] = field(default_factory=dict)
    distances: dict[str, float] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)
    backend: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


MODEL_IMPUTER = "model imputer (fitted on the training split)"


def imputer_fill(train: pd.DataFrame, contract: DataContract) -> dict[str, float]:
    """The numeric fill values of the model's own preprocessing fitted on ``train``: its imputer's statistics."""
    from mlcycle.fastprep import try_compile
    from mlcycle.models import build_preprocessor, model_input

    numeric = [c.name for c in contract.features if c.kind == "numeric"]
    if not numeric:
        return {}
    fast, why = try_compile(build_preprocessor(contract).fit(model_input(train, contract.feature_names)))
    if fast is None:
        raise MlcycleError(f"cannot read the model preprocessing's fill values: {why}")
    return {name: float(v) for name, v in zip(fast.numeric, fast.fill)}


class Encoder:
    def __init__(self, contract: DataContract, fill: dict[str, float], fill_source: str = MODEL_IMPUTER):
        self.contract = contract
        self.features = contract.features
        self.fill, self.fill_source = fill, fill_source
        # per categorical feature: training categories, then a missing bucket, then an unseen bucket
        self.categorical = {i: len(c.categories or []) + 2
                            for i, c in enumerate(self.features) if c.kind == "categorical"}
        self.codes = {c.name: {v: i for i, v in enumerate(c.categories or [])} for c in self.features if c.kind == "categorical"}

    @property
    def medians(self) -> dict[str, float]:  # the name before fill values came from the model's imputer
        return self.fill

    @classmethod
    def fit(cls, train: pd.DataFrame, contract: DataContract) -> "Encoder":
        return cls(contract, imputer_fill(train, contract))

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        columns = {s.name: pd.to_numeric(frame[s.name], errors="coerce").to_numpy(dtype=np.float64)
                   if s.kind == "numeric" else frame[s.name].to_numpy(dtype=object) for s in self.features}
        return self.encode_columns(columns, len(frame))

    def encode_columns(self, columns: dict[str, np.ndarray], n: int, out: np.ndarray | None = None) -> np.ndarray:
        """Encode column arrays (float64 numerics, object categoricals: what the predictor's codec decodes) into
        ``out`` (n rows, one column per feature; allocated when not given)."""
        out = np.empty((n, len(self.features)), dtype=np.float64) if out is None else out
        for j, spec in enumerate(self.features):
            values = columns[spec.name]
            if spec.kind == "numeric":
                values = np.asarray(values, dtype=np.float64)
                out[:, j] = np.where(np.isfinite(values), values, self.fill[spec.name])
            else:
                codes = self.codes[spec.name]
                missing, unseen = len(codes), len(codes) + 1
                out[:, j] = [codes.get(v, unseen) if isinstance(v, str) else missing if v is None or v != v else unseen
                             for v in values]
        return out


def psi(ref: np.ndarray, cur: np.ndarray, categorical: bool, bins: int = 10) -> float:
    if categorical:
        edges = np.arange(-0.5, max(ref.max(initial=0), cur.max(initial=0)) + 1.5)
    else:
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            return 0.0
        edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(ref, edges)[0] / max(len(ref), 1) + PSI_EPS
    q = np.histogram(cur, edges)[0] / max(len(cur), 1) + PSI_EPS
    return float(np.sum((q - p) * np.log(q / p)))


class Backend:
    name = ""

    def __init__(self, encoder: Encoder, x_ref: np.ndarray, p_val: float):
        self.encoder, self.x_ref, self.p_val = encoder, x_ref, p_val

    def score(self, window: pd.DataFrame) -> DriftReport:
        return self.score_matrix(self.encoder.encode(window))

    def score_matrix(self, x: np.ndarray) -> DriftReport:
        """Test an already-encoded window (``Encoder.encode_columns``)."""
        report = self._test(x)
        names = [f.name for f in self.encoder.features]
        report.psi = {n: round(psi(self.x_ref[:, j], x[:, j], j in self.encoder.categorical), 6) for j, n in enumerate(names)}
        report.backend = self.name
        return report

    def _test(self, x: np.ndarray) -> DriftReport:
        raise NotImplementedError


class ScipyBackend(Backend):
    name = "scipy"

    def _test(self, x: np.ndarray) -> DriftReport:
        from scipy.stats import chi2_contingency, ks_2samp

        p_values, distances = {}, {}
        for j, spec in enumerate(self.encoder.features):
            ref, cur = self.x_ref[:, j], x[:, j]
            if j in self.encoder.categorical:
                k = self.encoder.categorical[j]
                table = np.vstack([np.bincount(ref.astype(int), minlength=k), np.bincount(cur.astype(int), minlength=k)])
                table = table[:, table.sum(axis=0) > 0]
                if table.shape[1] < 2:
                    p, d = 1.0, 0.0
                else:
                    d, p = chi2_contingency(table)[:2]
            else:
                d, p = ks_2samp(ref, cur, mode="asymp")  # as alibi-detect does
            p_values[spec.name], distances[spec.name] = float(p), float(d)
        threshold = self.p_val / len(p_values)  # Bonferroni
        return DriftReport(min(p_values.values()) < threshold, len(x), threshold, p_values, distances)


class AlibiBackend(Backend):
    name = "alibi"

    def __init__(self, encoder: Encoder, x_ref: np.ndarray, p_val: float, detector=None):
        super().__init__(encoder, x_ref, p_val)
        if detector is None:
            from alibi_detect.cd import TabularDrift

            detector = TabularDrift(x_ref, p_val=p_val, categories_per_feature={j: None for j in encoder.categorical}, correction="bonferroni")
        self.detector = detector

    def _test(self, x: np.ndarray) -> DriftReport:
        data = self.detector.predict(x, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        names = [f.name for f in self.encoder.features]
        threshold = float(data["threshold"])
        p_values = {n: float(v) for n, v in zip(names, data["p_val"])}
        distances = {n: float(v) for n, v in zip(names, data["distance"])}
        return DriftReport(bool(data["is_drift"]), len(x), threshold, p_values, distances)


def build(reference: pd.DataFrame, contract: DataContract, backend: str = "alibi", p_val: float = 0.05,
          train: pd.DataFrame | None = None) -> Backend:
    """A detector whose reference is ``reference``; fill values from the model's preprocessing fitted on ``train``
    (the training split; without it, on ``reference`` itself, and ``fill_source`` says so)."""
    if backend not in BACKENDS:
        raise MlcycleError(f"unknown drift backend {backend!r}; choose {' or '.join(BACKENDS)}")
    if train is None:
        encoder = Encoder(contract, imputer_fill(reference, contract),
                          "model preprocessing fitted on the reference sample")
    else:
        encoder = Encoder(contract, imputer_fill(train, contract))
    x_ref = encoder.encode(reference)
    return (AlibiBackend if backend == "alibi" else ScipyBackend)(encoder, x_ref, p_val)


def save(detector: Backend, directory: Path) -> None:
    """``config.json`` + ``reference.npy`` for every backend; alibi-detect's own save_detector under ``alibi/``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "reference.npy", detector.x_ref, allow_pickle=False)
    config = {"backend": detector.name, "p_val": detector.p_val, "fill": detector.encoder.fill,
              "fill_source": detector.encoder.fill_source, "categorical_buckets": "categories, missing, unseen"}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    if isinstance(detector, AlibiBackend):
        from alibi_detect.saving import save_detector

        save_detector(detector.detector, str(directory / "alibi"))


def load(directory: Path, contract: DataContract, backend: str | None = None) -> Backend:
    """Load a saved detector; ``backend`` may override the saved one (the same reference serves both)."""
    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    if "fill" in config:
        encoder = Encoder(contract, config["fill"], config.get("fill_source", MODEL_IMPUTER))
    else:  # saved before fill values came from the model's imputer
        encoder = Encoder(contract, config["medians"], "reference-sample median (detector saved by an older mlcycle)")
    x_ref = np.load(directory / "reference.npy", allow_pickle=False)
    chosen = backend or config["backend"]
    if chosen == "alibi":
        detector = None
        if (directory / "alibi").is_dir():
            from alibi_detect.saving import load_detector

            detector = load_detector(str(directory / "alibi"))
        return AlibiBackend(encoder, x_ref, config["p_val"], detector)
    if chosen == "scipy":
        return ScipyBackend(encoder, x_ref, config["p_val"])
    raise MlcycleError(f"unknown drift backend {chosen!r}; choose {' or '.join(BACKENDS)}")


def reference_sample(train: pd.DataFrame, contract: DataContract, seed: int = defaults.SEED) -> pd.DataFrame:
    """The rows a version keeps as its drift reference: drawn once, by register, with the run's seed."""
    sample = train.sample(n=min(defaults.REFERENCE_ROWS, len(train)), random_state=seed)
    return sample[contract.feature_names + [contract.label]]
