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

from mlcycle import defaults
from mlcycle.contract import DataContract
from mlcycle.errors import DriftError

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
        raise DriftError(f"cannot read the model preprocessing's fill values: {why}")
    return {name: float(v) for name, v in zip(fast.numeric, fast.fill, strict=False)}


class Encoder:
    def __init__(self, contract: DataContract, fill: dict[str, float], fill_source: str = MODEL_IMPUTER):
        self.contract = contract
        self.features = contract.features
        self.fill, self.fill_source = fill, fill_source
        # per categorical feature: training categories, then a missing bucket, then an unseen bucket
        self.categorical = {
            i: len(c.categories or []) + 2 for i, c in enumerate(self.features) if c.kind == "categorical"
        }
        self.codes = {
            c.name: {v: i for i, v in enumerate(c.categories or [])} for c in self.features if c.kind == "categorical"
        }

    @property
    def medians(self) -> dict[str, float]:  # the name before fill values came from the model's imputer
        return self.fill

    @classmethod
    def fit(cls, train: pd.DataFrame, contract: DataContract) -> "Encoder":
        return cls(contract, imputer_fill(train, contract))

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        columns = {
            s.name: pd.to_numeric(frame[s.name], errors="coerce").to_numpy(dtype=np.float64)
            if s.kind == "numeric"
            else frame[s.name].to_numpy(dtype=object)
            for s in self.features
        }
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
                out[:, j] = [
                    codes.get(v, unseen) if isinstance(v, str) else missing if v is None or v != v else unseen
                    for v in values
                ]
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
        self._psi_ref: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}  # per feature: bin edges, reference shares

    def _psi(self, j: int, cur: np.ndarray) -> float:
        """``psi(x_ref[:, j], cur)`` with the reference side (quantile edges, shares) computed once."""
        if j not in self._psi_ref:
            ref = self.x_ref[:, j]
            if j in self.encoder.categorical:  # one bin per code; empty bins add exactly 0 to the sum
                k = max(self.encoder.categorical[j], int(ref.max(initial=0)) + 1)
                edges = np.arange(-0.5, k + 0.5)
            else:
                edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
                if len(edges) >= 2:
                    edges[0], edges[-1] = -np.inf, np.inf
            shares = np.histogram(ref, edges)[0] / max(len(ref), 1) + PSI_EPS if len(edges) >= 2 else None
            self._psi_ref[j] = None if shares is None else (edges, shares)
        cached = self._psi_ref[j]
        if cached is None:
            return 0.0
        edges, p = cached
        if j in self.encoder.categorical and cur.max(initial=0) >= len(edges) - 1:
            return psi(self.x_ref[:, j], cur, True)  # a code beyond the encoder's buckets (never from encode_columns)
        q = np.histogram(cur, edges)[0] / max(len(cur), 1) + PSI_EPS
        return float(np.sum((q - p) * np.log(q / p)))

    def score(self, window: pd.DataFrame) -> DriftReport:
        return self.score_matrix(self.encoder.encode(window))

    def score_matrix(self, x: np.ndarray) -> DriftReport:
        """Test an already-encoded window (``Encoder.encode_columns``)."""
        report = self._test(x)
        names = [f.name for f in self.encoder.features]
        report.psi = {n: round(self._psi(j, x[:, j]), 6) for j, n in enumerate(names)}
        report.backend = self.name
        return report

    def _test(self, x: np.ndarray) -> DriftReport:
        raise NotImplementedError


class ScipyBackend(Backend):
    """KS (``ks_2samp(mode="asymp")``, as alibi-detect calls it) and chi-squared (``chi2_contingency``) computed with
    the same formulas as scipy, the reference side (sorted values, category counts) prepared once and the p-values
    of all numeric features in one call: a window costs a fraction of the per-feature scipy calls (tests hold the
    two to 1e-12)."""

    name = "scipy"

    def __init__(self, encoder: Encoder, x_ref: np.ndarray, p_val: float):
        super().__init__(encoder, x_ref, p_val)
        self._numeric = [j for j in range(x_ref.shape[1]) if j not in encoder.categorical]
        self._ref_sorted = np.sort(x_ref[:, self._numeric], axis=0)
        n1 = len(self._ref_sorted)  # the reference ECDF at its own points, for every window's KS statistic
        self._ref_ecdf = [np.searchsorted(ref, ref, side="right") / n1 for ref in self._ref_sorted.T]
        self._ref_counts = {
            j: np.bincount(x_ref[:, j].astype(int), minlength=k) for j, k in encoder.categorical.items()
        }

    def _test(self, x: np.ndarray) -> DriftReport:
        from scipy.special import chdtrc
        from scipy.stats import kstwo

        results: dict[int, tuple[float, float]] = {}
        if self._numeric:
            cur_sorted = np.sort(x[:, self._numeric], axis=0)
            n1, n2 = len(self._ref_sorted), len(cur_sorted)
            d = np.empty(len(self._numeric))
            for i in range(len(self._numeric)):
                ref, cur = self._ref_sorted[:, i], cur_sorted[:, i]
                # ECDF differences at every point of both samples (ks_2samp's), the reference points' side cached
                at_ref = self._ref_ecdf[i] - np.searchsorted(cur, ref, side="right") / n2
                at_cur = np.searchsorted(ref, cur, side="right") / n1 - np.searchsorted(cur, cur, side="right") / n2
                low, high = min(at_ref.min(), at_cur.min()), max(at_ref.max(), at_cur.max())
                d[i] = max(float(np.clip(-low, 0, 1)), float(high))
            m, n = sorted([float(n1), float(n2)], reverse=True)
            p = np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0, 1)
            results.update({j: (float(d[i]), float(p[i])) for i, j in enumerate(self._numeric)})
        for j, k in self.encoder.categorical.items():
            ref_counts, cur_counts = self._ref_counts[j], np.bincount(x[:, j].astype(int), minlength=k)
            size = max(len(ref_counts), len(cur_counts))
            table = np.vstack(
                [np.pad(ref_counts, (0, size - len(ref_counts))), np.pad(cur_counts, (0, size - len(cur_counts)))]
            )
            table = table[:, table.sum(axis=0) > 0].astype(np.float64)
            if table.shape[1] < 2:
                results[j] = (0.0, 1.0)
                continue
            expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
            dof = table.shape[1] - 1
            if dof == 1:  # Yates' correction, as chi2_contingency applies it
                diff = expected - table
                table = table + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
            stat = float(np.sum((table - expected) ** 2 / expected))
            results[j] = (stat, float(chdtrc(dof, stat)))
        p_values, distances = {}, {}
        for j, spec in enumerate(self.encoder.features):
            distances[spec.name], p_values[spec.name] = results[j]
        threshold = self.p_val / len(p_values)  # Bonferroni
        return DriftReport(min(p_values.values()) < threshold, len(x), threshold, p_values, distances)


class AlibiBackend(Backend):
    name = "alibi"

    def __init__(self, encoder: Encoder, x_ref: np.ndarray, p_val: float, detector=None):
        super().__init__(encoder, x_ref, p_val)
        if detector is None:
            from alibi_detect.cd import TabularDrift

            detector = TabularDrift(
                x_ref,
                p_val=p_val,
                categories_per_feature={j: None for j in encoder.categorical},
                correction="bonferroni",
            )
        self.detector = detector

    def _test(self, x: np.ndarray) -> DriftReport:
        data = self.detector.predict(x, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        names = [f.name for f in self.encoder.features]
        threshold = float(data["threshold"])
        p_values = {n: float(v) for n, v in zip(names, data["p_val"], strict=False)}
        distances = {n: float(v) for n, v in zip(names, data["distance"], strict=False)}
        return DriftReport(bool(data["is_drift"]), len(x), threshold, p_values, distances)


def build(
    reference: pd.DataFrame,
    contract: DataContract,
    backend: str = "alibi",
    p_val: float = 0.05,
    train: pd.DataFrame | None = None,
) -> Backend:
    """A detector whose reference is ``reference``; fill values from the model's preprocessing fitted on ``train``
    (the training split; without it, on ``reference`` itself, and ``fill_source`` says so)."""
    if backend not in BACKENDS:
        raise DriftError(f"unknown drift backend {backend!r}; choose {' or '.join(BACKENDS)}")
    if train is None:
        encoder = Encoder(
            contract, imputer_fill(reference, contract), "model preprocessing fitted on the reference sample"
        )
    else:
        encoder = Encoder(contract, imputer_fill(train, contract))
    x_ref = encoder.encode(reference)
    return (AlibiBackend if backend == "alibi" else ScipyBackend)(encoder, x_ref, p_val)


def save(detector: Backend, directory: Path) -> None:
    """``config.json`` + ``reference.npy`` for every backend; alibi-detect's own save_detector under ``alibi/``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "reference.npy", detector.x_ref, allow_pickle=False)
    config = {
        "backend": detector.name,
        "p_val": detector.p_val,
        "fill": detector.encoder.fill,
        "fill_source": detector.encoder.fill_source,
        "categorical_buckets": "categories, missing, unseen",
        "medians": detector.encoder.fill,
    }  # the same values under the old name, for detectors before "fill"
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
    raise DriftError(f"unknown drift backend {chosen!r}; choose {' or '.join(BACKENDS)}")


def reference_sample(train: pd.DataFrame, contract: DataContract, seed: int = defaults.SEED) -> pd.DataFrame:
    """The rows a version keeps as its drift reference: drawn once, by register, with the run's seed."""
    sample = train.sample(n=min(defaults.REFERENCE_ROWS, len(train)), random_state=seed)
    return sample[contract.feature_names + [contract.label]]
