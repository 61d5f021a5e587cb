"""A NumPy replica of the fitted preprocessing, for low-latency serving.

``ColumnTransformer.transform`` on a one-row DataFrame costs about a millisecond of pandas and
validation overhead; the arithmetic is microseconds. ``FastPreprocessor`` reads the fitted
parameters (imputer statistics, scaler mean/scale, one-hot categories) once and applies them to
column arrays. ``try_compile`` returns the replay only for the structure ``mlcycle.models.build_preprocessor``
builds and only after the replay reproduced ``transform`` on probe rows; otherwise None and the reason, which
callers report (the predictor logs it and sets ``mlcycle_preprocess_path{path="sklearn"}``) before falling back
to scikit-learn. tests/unit/test_fastprep.py holds the two to 1e-9 on every model family, with missing values,
None and unseen categories.
"""

from dataclasses import dataclass

import numpy as np

from mlcycle.errors import ModelError


@dataclass
class FastPreprocessor:
    numeric: list[str]
    fill: np.ndarray  # per numeric column
    mean: np.ndarray
    scale: np.ndarray
    categorical: list[str]
    categories: list[dict[str, int]]  # per categorical column: value -> one-hot offset
    cat_fill: str
    width: int

    def transform(self, columns: dict[str, np.ndarray], n: int) -> np.ndarray:
        out = np.zeros((n, self.width), dtype=np.float64)
        if self.numeric:
            num = np.empty((n, len(self.numeric)), dtype=np.float64)
            for j, name in enumerate(self.numeric):
                num[:, j] = columns[name]
            missing = np.isnan(num)
            if missing.any():
                num = np.where(missing, self.fill, num)
            out[:, : len(self.numeric)] = (num - self.mean) / self.scale
        offset = len(self.numeric)
        for name, lookup in zip(self.categorical, self.categories, strict=False):
            values = columns[name]
            for i in range(n):
                value = values[i]
                if value is None or (isinstance(value, float) and value != value):  # None or NaN: the imputer's fill
                    value = self.cat_fill
                hit = lookup.get(value)
                if hit is not None:
                    out[i, offset + hit] = 1.0
            offset += len(lookup)
        return out


class Unsupported(ModelError):
    """The fitted preprocessor has a structure the replay does not reproduce; the message says which part."""


def compile_preprocessor(ct) -> FastPreprocessor | None:
    """The replay of ``ct``, or None when it cannot be one (``try_compile`` says why)."""
    return try_compile(ct)[0]


def try_compile(ct) -> tuple[FastPreprocessor | None, str]:
    """``(replay, "")`` or ``(None, reason)``. A replay is returned only after it reproduced ``ct.transform`` on
    probe rows (fill values, missing values, every category, an unseen one) to 1e-9."""
    try:
        fast = _compile(ct)
        _probe(fast, ct)
        return fast, ""
    except Unsupported as e:
        return None, str(e)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
        return None, f"{type(e).__name__}: {e}"


def _impute_then(name: str, pipe, second: str, imputer: type, encoder: type) -> tuple:
    """Transformer ``name``'s two steps, "impute" then ``second``, refused unless exactly ``imputer`` and ``encoder``."""
    steps = [step for step, _ in getattr(pipe, "steps", [])]
    if steps != ["impute", second]:
        raise Unsupported(f"'{name}' steps are {steps}, not {['impute', second]}")
    imp, enc = pipe.named_steps["impute"], pipe.named_steps[second]
    if type(imp) is not imputer or type(enc) is not encoder:
        raise Unsupported(
            f"'{name}' is {type(imp).__name__} + {type(enc).__name__}, not {imputer.__name__} + {encoder.__name__}"
        )
    return imp, enc


def _compile(ct) -> FastPreprocessor:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(ct, ColumnTransformer):
        raise Unsupported(f"preprocessor is a {type(ct).__name__}, not a ColumnTransformer")
    numeric, fill, mean, scale, categorical, categories, cat_fill = [], [], [], [], [], [], "__missing__"
    order = []
    for name, pipe, cols in ct.transformers_:
        if name == "remainder":
            if pipe != "drop" and len(cols):
                raise Unsupported(f"remainder={pipe!r} passes {len(cols)} column(s) through")
            continue
        if name == "num":
            imp, sc = _impute_then(name, pipe, "scale", SimpleImputer, StandardScaler)
            if imp.add_indicator or len(imp.statistics_) != len(cols) or np.isnan(imp.statistics_.astype(float)).any():
                raise Unsupported("'num' imputer adds indicators or has no fill value for some column")
            numeric += list(cols)
            fill += list(imp.statistics_)
            mean += list(sc.mean_ if sc.with_mean else np.zeros(len(cols)))
            scale += list(sc.scale_ if sc.with_std else np.ones(len(cols)))
        elif name == "cat":
            imp, oh = _impute_then(name, pipe, "onehot", SimpleImputer, OneHotEncoder)
            if imp.strategy != "constant" or imp.add_indicator:
                raise Unsupported(
                    f"'cat' imputer strategy {imp.strategy!r} (add_indicator={imp.add_indicator}), not 'constant'"
                )
            if oh.drop is not None or oh.handle_unknown != "ignore" or getattr(oh, "_infrequent_enabled", False):
                raise Unsupported(
                    "'cat' one-hot encoder drops a category, refuses unknown ones or groups infrequent ones"
                )
            cat_fill = imp.fill_value
            categorical += list(cols)
            if any(not isinstance(v, str) for cats in oh.categories_ for v in cats):
                raise Unsupported("'cat' one-hot encoder has a non-string category (e.g. None learned as a value)")
            categories += [{v: i for i, v in enumerate(cats)} for cats in oh.categories_]
        else:
            raise Unsupported(f"unknown transformer {name!r}")
        order.append(name)
    if order not in (["num", "cat"], ["num"], ["cat"]):
        raise Unsupported(f"transformers {order}, not 'num' then 'cat'")
    width = len(numeric) + sum(len(c) for c in categories)
    return FastPreprocessor(
        numeric,
        np.array(fill, dtype=float),
        np.array(mean, dtype=float),
        np.array(scale, dtype=float),
        categorical,
        categories,
        str(cat_fill),
        width,
    )


def _probe(fast: FastPreprocessor, ct) -> None:
    """Hold the replay to ``ct.transform`` on rows built from its own parameters; raise Unsupported if they differ."""
    import pandas as pd

    n = max([3] + [len(c) + 2 for c in fast.categories])
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(fast.numeric):
        base = fast.fill[j] + fast.scale[j] * np.arange(n, dtype=np.float64)
        columns[name] = np.where(np.arange(n) == 1, np.nan, base)  # row 1: missing everywhere
    for name, lookup in zip(fast.categorical, fast.categories, strict=False):
        values = np.empty(n, dtype=object)
        cats = list(lookup) + ["__mlcycle_unseen__"]
        for i in range(n):
            values[i] = None if i == 1 else cats[i % len(cats)]
        columns[name] = values
    from mlcycle.models import model_input

    names = list(ct.feature_names_in_)
    frame = model_input(pd.DataFrame({name: columns.get(name, np.zeros(n)) for name in names}), names)
    expected = np.asarray(ct.transform(frame), dtype=np.float64)
    got = fast.transform(columns, n)
    if expected.shape != got.shape or not np.allclose(got, expected, rtol=0, atol=1e-9):
        raise Unsupported(
            f"replay differs from the fitted preprocessor on probe rows (shape {got.shape} vs {expected.shape})"
        )
