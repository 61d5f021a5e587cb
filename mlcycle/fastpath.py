"""The compiled fast path: the fitted estimator converted to ONNX at registration, run by onnxruntime.

An XGBoost booster is converted by onnxmltools, a scikit-learn logistic regression / ridge or histogram gradient
boosting model by skl2onnx (``COMPILED``); the baseline (a constant) is not compiled. ``inplace_predict`` costs
about 200-300 µs per one-row call (XGBoost's per-call setup) and scikit-learn's ``predict_proba`` about 70 µs
(its input validation); the same model run by onnxruntime takes under 10 µs (README "Benchmarks"). The register step
calls :func:`build`: convert, then score the full test set both ways — the native path (scikit-learn
preprocessing + booster) and the fast path (the NumPy preprocessing replay of mlcycle.fastprep + ONNX) —
and store ``fastpath.onnx`` only when no probability differs by more than ``TOLERANCE`` and no row's label
differs. What it returns is the version's ``fast_path`` metadata entry: ``{"status": "ready", "file", "sha256",
"parity", ...}`` or ``{"status": "absent", "reason": ...}``. The server loads the file with :func:`load`
(sha256 checked first; ONNX is a protobuf graph, no pickle) and falls back to the native booster whenever
the entry is absent or the file is refused, saying why.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.errors import IntegrityError, ModelError

if TYPE_CHECKING:
    from mlcycle.fastprep import FastPreprocessor
    from mlcycle.schema import BundleSpec

FAST_FILE = "fastpath.onnx"
COMPILED = ("xgboost", "logreg", "hgb")  # the families a fast path is built for
TOLERANCE = 1e-5  # largest allowed |p_fast - p_native| (classification) or relative error (regression)
OPSET = 15


class FastPathUnavailable(ModelError):
    """The model has no fast path: no converter for it, the converter failed, or parity failed."""


@dataclass
class OnnxScorer:
    """Scores preprocessed rows like ``ModelBundle.score_matrix`` (classification (n, k), regression (n,))."""

    session: Any  # an onnxruntime.InferenceSession
    task: str
    input_name: str
    output: str
    model_bytes: bytes = b""  # the verified ONNX model: a process that receives this scorer rebuilds its session

    def __getstate__(self) -> dict:
        return {**self.__dict__, "session": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.session = session(self.model_bytes, self.task).session

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
        return out.reshape(-1) if self.task == "regression" else out


def convert(bundle) -> bytes:
    """The bundle's estimator as a serialized ONNX model; FastPathUnavailable when it cannot be converted."""
    from mlcycle.models import _is_booster

    if bundle.family in ("logreg", "hgb"):
        return _convert_sklearn(bundle.estimator, bundle.task)
    if bundle.family != "xgboost" or not _is_booster(bundle.estimator):
        raise FastPathUnavailable(_no_converter(bundle.family))
    try:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as e:
        raise FastPathUnavailable(f"onnxmltools is not installed: {e}") from e
    n = bundle.estimator.num_features()
    try:
        model = convert_xgboost(
            bundle.estimator, initial_types=[("input", FloatTensorType([None, n]))], target_opset=OPSET
        )
    except (
        Exception
    ) as e:  # the converter raises bare RuntimeError/ValueError/NotImplementedError for what it cannot do
        raise FastPathUnavailable(f"onnxmltools cannot convert this booster: {type(e).__name__}: {e}") from e
    return model.SerializeToString()


def _convert_sklearn(estimator, task: str) -> bytes:
    """A scikit-learn estimator (on the preprocessed matrix) as ONNX, by skl2onnx; classifiers answer a plain
    ``probabilities`` tensor (no ZipMap of dicts)."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as e:
        raise FastPathUnavailable(f"skl2onnx is not installed: {e}") from e
    n = getattr(estimator, "n_features_in_", None)
    if n is None:
        raise FastPathUnavailable(f"{type(estimator).__name__} is not fitted: no n_features_in_")
    options = {id(estimator): {"zipmap": False}} if task == "classification" else None
    try:
        model = convert_sklearn(
            estimator, initial_types=[("input", FloatTensorType([None, n]))], options=options, target_opset=OPSET
        )
    except Exception as e:  # skl2onnx raises bare RuntimeError/NotImplementedError/MissingShapeCalculator
        raise FastPathUnavailable(f"skl2onnx cannot convert {type(estimator).__name__}: {type(e).__name__}: {e}") from e
    return model.SerializeToString()


def session(data: bytes, task: str) -> OnnxScorer:
    """An onnxruntime session on one thread (the server scores on its own thread; no pool to hop to)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        sess = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise FastPathUnavailable(f"onnxruntime refuses the fast-path model: {type(e).__name__}: {e}") from e
    outputs = [o.name for o in sess.get_outputs()]
    wanted = "probabilities" if task == "classification" else outputs[0]
    if wanted not in outputs:
        raise FastPathUnavailable(f"fast-path model has outputs {outputs}, expected '{wanted}'")
    return OnnxScorer(sess, task, sess.get_inputs()[0].name, wanted, data)


def columns_of(frame, bundle) -> dict[str, np.ndarray]:
    """Feature columns as the request codec hands them over: float64 numbers (NaN missing), objects (None missing)."""
    import pandas as pd

    out = {}
    for name in bundle.features:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col):
            out[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[name] = np.array([None if pd.isna(v) else str(v) for v in col], dtype=object)
    return out


def parity(bundle, scorer: OnnxScorer, frame, replay=None) -> dict:
    """Native path vs fast path on every row of ``frame``; raises FastPathUnavailable on any disagreement."""
    from mlcycle.metrics import apply_threshold

    if len(frame) == 0:
        raise FastPathUnavailable("no rows to check the fast path against the native model")
    native = np.asarray(bundle.score(frame), dtype=np.float64)
    x = replay.transform(columns_of(frame, bundle), len(frame)) if replay is not None else bundle.transform(frame)
    fast = np.asarray(scorer.score_matrix(x), dtype=np.float64)
    if fast.shape != native.shape:
        raise FastPathUnavailable(f"fast path returns shape {fast.shape}, the native model {native.shape}")
    if bundle.task == "regression":
        err = np.abs(fast - native) / np.maximum(1.0, np.abs(native))
        mismatched = 0
    else:
        err = np.abs(fast - native)
        mismatched = int(
            np.sum(
                apply_threshold(fast, bundle.classes, bundle.threshold)
                != apply_threshold(native, bundle.classes, bundle.threshold)
            )
        )
    report: dict[str, Any] = {
        "rows": int(len(frame)),
        "max_abs_diff": float(err.max()),
        "label_mismatches": mismatched,
        "tolerance": TOLERANCE,
        "preprocessing": "numpy-replay" if replay is not None else "sklearn",
    }
    if float(err.max()) > TOLERANCE or mismatched:
        worst = int(err.reshape(len(frame), -1).max(axis=1).argmax())
        raise FastPathUnavailable(
            f"parity check failed on {report['rows']} rows: max difference {report['max_abs_diff']:.3g} "
            f"(limit {TOLERANCE:g}) at row {worst}, {mismatched} label(s) differ"
        )
    return report


def build(bundle, frame, out_dir: Path, converter: Callable[[object], bytes] = convert) -> dict:
    """Convert and parity-check; on success write ``out_dir/fastpath.onnx``. Returns the ``fast_path`` entry."""
    from mlcycle.fastprep import compile_preprocessor

    target = Path(out_dir) / FAST_FILE
    try:
        data = converter(bundle)
        scorer = session(data, bundle.task)
        report = parity(bundle, scorer, frame, compile_preprocessor(bundle.preprocessor))
    except FastPathUnavailable as e:
        target.unlink(missing_ok=True)
        return {"status": "absent", "reason": str(e)}
    target.write_bytes(data)
    return {
        "status": "ready",
        "format": "onnx",
        "file": FAST_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "opset": OPSET,
        "parity": report,
        "libraries": _versions(),
    }


def build_from_spec(directory: Path, spec: "BundleSpec", frame, out_dir: Path) -> dict:
    """:func:`build` for the bundle in ``directory`` that ``spec`` (its verified ``BundleSpec``) describes. A family
    that is not compiled (the baseline) gets the same ``absent`` entry as :func:`build` from the spec alone: it is
    not deserialized, so its register step imports neither skops nor scikit-learn."""
    if spec.family not in COMPILED or (spec.family == "xgboost" and spec.estimator_file != "estimator.ubj"):
        (Path(out_dir) / FAST_FILE).unlink(missing_ok=True)
        return {"status": "absent", "reason": _no_converter(spec.family)}
    from mlcycle.models import ModelBundle

    return build(ModelBundle.from_spec(directory, spec, nthread=1), frame, out_dir)


def _no_converter(family: str) -> str:
    return f"no fast-path converter for family '{family}' (compiled: {', '.join(COMPILED)})"


def load(directory: Path, entry: dict | None, task: str) -> tuple[OnnxScorer | None, str]:
    """The fast path recorded in a version's metadata, or (None, why not). Never raises for a bad artifact."""
    if not entry or entry.get("status") != "ready":
        return (
            None,
            (entry or {}).get("reason") or "the version has no fast path (registered before fast paths existed)",
        )
    path = Path(directory) / entry.get("file", FAST_FILE)
    try:
        if not path.is_file():
            raise IntegrityError(f"{path.name} is missing")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.get("sha256"):
            raise IntegrityError(
                f"sha256 mismatch for {path.name}: recorded {str(entry.get('sha256'))[:12]}…, found {actual[:12]}…"
            )
        return session(data, task), ""
    except (IntegrityError, FastPathUnavailable, ImportError) as e:
        return None, f"fast path refused: {e}"


@dataclass(frozen=True)
class ScoringPaths:
    """The paths a version's rows take on the predictor (and on the shadow step, which scores as it does)."""

    fast: "FastPreprocessor | None"  # the NumPy preprocessing replay, None: the sklearn preprocessor
    preprocess_why: str  # why there is no replay ("" with one)
    scorer: Any  # what scores preprocessed rows: the fast path's OnnxScorer, else the bundle itself
    fast_path_reason: str  # why the fast path is not used ("" when it is)

    @property
    def preprocess_path(self) -> str:
        return "numpy" if self.fast is not None else "sklearn"

    @property
    def scoring_path(self) -> str:
        return "fast" if isinstance(self.scorer, OnnxScorer) else "native"


def select(bundle, directory: Path, entry: dict | None) -> ScoringPaths:
    """The NumPy replay of ``bundle``'s preprocessor when it reproduces it (mlcycle.fastprep), and the compiled fast
    path a version records (``entry``, its file in ``directory``) when it verifies (``load``); else the sklearn
    preprocessor and the model's own scoring."""
    from mlcycle.fastprep import try_compile

    fast, why = try_compile(bundle.preprocessor)
    onnx, reason = load(directory, entry, bundle.task)
    return ScoringPaths(fast, why, onnx if onnx is not None else bundle, reason)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("onnxmltools", "skl2onnx", "onnxruntime", "onnx"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
