"""Data contracts: inferred from training data, stored with the model, checked on later data.

A contract names every feature with its kind (numeric / categorical / datetime), the observed
range or category set, and the allowed null ratio; plus the label, the task, the minimum row count
and the maximum duplicate ratio. ``check`` returns every breach at once, each naming the column,
the rule and the observed value.
"""

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlcycle.errors import Breach, ContractViolation, DataError

Kind = Literal["numeric", "categorical", "datetime"]
Task = Literal["classification", "regression"]
MAX_CATEGORIES = 1_000  # above this a string column is an identifier, not a category
NULL_SLACK = 0.05  # inferred max_null_ratio = observed + slack
RANGE_TOLERANCE = 0.01  # share of values allowed outside the training range


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Kind
    dtype: str
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    max_null_ratio: float = Field(0.0, ge=0.0, le=1.0)


class DataContract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    task: Task
    columns: list[ColumnSpec]
    timestamp: str | None = None
    min_rows: int = Field(100, ge=1)
    max_duplicate_ratio: float = Field(0.5, ge=0.0, le=1.0)
    max_out_of_range_ratio: float = Field(RANGE_TOLERANCE, ge=0.0, le=1.0)
    max_unseen_category_ratio: float = Field(RANGE_TOLERANCE, ge=0.0, le=1.0)
    classes: list[int | str] | None = None

    @property
    def features(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.kind != "datetime"]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _kind_of(series: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series) or _looks_like_datetime(series):
        return "datetime"
    return "categorical"


def _looks_like_datetime(series: pd.Series) -> bool:
    """ISO-8601 timestamps read from CSV arrive as strings; recognise them instead of one-hot encoding them."""
    sample = series.dropna().head(200).astype(str)
    if sample.empty or not sample.str.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?").all():
        return False
    return not pd.to_datetime(sample, errors="coerce", format="ISO8601").isna().any()


MAX_CLASSES = 50  # a numeric label with more distinct values (or any non-integer value) is a regression target


def infer_task(y: pd.Series) -> tuple[Task, str]:
    """Classification or regression from the label's values, with the reason (said to the user)."""
    distinct = y.dropna().nunique()
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification", f"{distinct} distinct non-numeric values"
    values = y.dropna().to_numpy(dtype=float)
    if not np.all(values == np.round(values)):
        return "regression", "numeric with non-integer values"
    if distinct > MAX_CLASSES:
        return "regression", f"integer with {distinct} distinct values (more than {MAX_CLASSES})"
    return "classification", f"integer with {distinct} distinct values"


def check_label(frame: pd.DataFrame, label: str, task: Task) -> None:
    """The label exists, has no missing values and is not constant (classification: >= 2 classes)."""
    if label not in frame.columns:
        import difflib

        columns = list(map(str, frame.columns))
        close = difflib.get_close_matches(label, columns, n=3, cutoff=0.5) or [
            c for c in columns if c.lower() == label.lower()
        ]
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(f"label column '{label}' not found{hint} (columns: {', '.join(columns)})")
    y = frame[label]
    nulls = int(y.isna().sum())
    if nulls:
        raise DataError(
            f"label column '{label}' has {nulls} missing value(s) (NaN/null); drop or fill them before training"
        )
    if y.nunique() < 2:
        raise DataError(f"label column '{label}' is constant (only value {y.iloc[0]!r}); nothing to learn")
    if task == "regression" and (not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
        example = next((v for v in y if not isinstance(v, (int, float))), y.iloc[0])
        raise DataError(
            f"label column '{label}' is categorical (dtype {y.dtype}, e.g. {example!r}) but the task is regression, "
            "which needs a numeric label; use --task classification"
        )
    if task == "regression" and not np.isfinite(y.to_numpy(dtype=float)).all():
        raise DataError(f"label column '{label}' contains infinite values")


def infer_contract(
    frame: pd.DataFrame,
    label: str,
    task: Task = "classification",
    timestamp: str | None = None,
    max_categories: int = MAX_CATEGORIES,
    min_rows: int = 100,
) -> DataContract:
    """Infer a contract from training data; refuses data no model should be trained on."""
    check_label(frame, label, task)
    if timestamp and timestamp not in frame.columns:
        raise DataError(f"timestamp column '{timestamp}' not found; columns are: {', '.join(map(str, frame.columns))}")
    specs: list[ColumnSpec] = []
    for name in frame.columns:
        if name == label:
            continue
        series = frame[name]
        kind = "datetime" if name == timestamp else _kind_of(series)
        null_ratio = float(series.isna().mean())
        if null_ratio >= 1.0:
            raise DataError(f"column '{name}' is entirely missing (all {len(series)} values null)")
        max_null = min(1.0, round(null_ratio + NULL_SLACK, 6)) if null_ratio > 0 else 0.0
        if kind == "numeric":
            values = series.to_numpy(dtype=float, na_value=np.nan)
            finite = values[np.isfinite(values)]
            specs.append(
                ColumnSpec(
                    name=str(name),
                    kind=kind,
                    dtype=str(series.dtype),
                    min=float(finite.min()),
                    max=float(finite.max()),
                    max_null_ratio=max_null,
                )
            )
        elif kind == "categorical":
            distinct = series.dropna().astype(str).unique()
            if len(distinct) > max_categories:
                raise DataError(
                    f"column '{name}' has {len(distinct)} distinct values (more than max_categories={max_categories}): "
                    "it looks like an identifier; drop it, bucket it, or raise max_categories"
                )
            specs.append(
                ColumnSpec(
                    name=str(name),
                    kind=kind,
                    dtype=str(series.dtype),
                    categories=sorted(map(str, distinct)),
                    max_null_ratio=max_null,
                )
            )
        else:
            specs.append(ColumnSpec(name=str(name), kind=kind, dtype=str(series.dtype), max_null_ratio=max_null))
    if not any(s.kind != "datetime" for s in specs):
        raise DataError("no feature columns besides the label and timestamp")
    classes = sorted(frame[label].unique().tolist()) if task == "classification" else None
    return DataContract(label=label, task=task, columns=specs, timestamp=timestamp, min_rows=min_rows, classes=classes)


def check(frame: pd.DataFrame, contract: DataContract, require_label: bool = True) -> list[Breach]:
    """Every breach of ``contract`` by ``frame`` (an empty list when it conforms)."""
    breaches: list[Breach] = []
    if len(frame) < contract.min_rows:
        breaches.append(Breach("*", "min_rows", len(frame), f">= {contract.min_rows}"))
    if require_label:
        if contract.label not in frame.columns:
            breaches.append(Breach(contract.label, "label_present", "missing", "present"))
        else:
            y = frame[contract.label]
            if y.isna().any():
                breaches.append(Breach(contract.label, "label_not_null", int(y.isna().sum()), "0 nulls"))
            if y.nunique() < 2:
                breaches.append(Breach(contract.label, "label_not_constant", int(y.nunique()), ">= 2 distinct values"))
            if contract.classes is not None:
                unknown = sorted(set(y.dropna().tolist()) - set(contract.classes), key=str)
                if unknown:
                    breaches.append(Breach(contract.label, "label_classes", unknown[:5], contract.classes))
    for spec in contract.columns:
        if spec.name not in frame.columns:
            breaches.append(Breach(spec.name, "column_present", "missing", "present"))
            continue
        breaches.extend(_check_column(frame[spec.name], spec, contract))
    if len(frame):
        dup = float(frame.duplicated().mean())
        if dup > contract.max_duplicate_ratio:
            breaches.append(Breach("*", "max_duplicate_ratio", round(dup, 4), f"<= {contract.max_duplicate_ratio}"))
    return breaches


def _check_column(series: pd.Series, spec: ColumnSpec, contract: DataContract) -> list[Breach]:
    out: list[Breach] = []
    null_ratio = float(series.isna().mean()) if len(series) else 0.0
    if null_ratio > spec.max_null_ratio:
        out.append(Breach(spec.name, "max_null_ratio", round(null_ratio, 4), f"<= {spec.max_null_ratio}"))
    present = series.dropna()
    if spec.kind == "numeric":
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            bad = present[pd.to_numeric(present, errors="coerce").isna()]
            example = bad.iloc[0] if len(bad) else present.iloc[0] if len(present) else None
            out.append(Breach(spec.name, "dtype", f"{series.dtype} (e.g. {example!r})", f"numeric ({spec.dtype})"))
            return out
        values = present.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            out.append(Breach(spec.name, "finite", int((~np.isfinite(values)).sum()), "no inf values"))
            values = values[np.isfinite(values)]
        if len(values) and spec.min is not None and spec.max is not None:
            outside = float(((values < spec.min) | (values > spec.max)).mean())
            if outside > contract.max_out_of_range_ratio:
                out.append(
                    Breach(
                        spec.name,
                        "range",
                        f"{outside:.2%} of values outside (observed [{values.min():g}, {values.max():g}])",
                        f"[{spec.min:g}, {spec.max:g}] for >= {1 - contract.max_out_of_range_ratio:.0%}",
                    )
                )
    elif spec.kind == "categorical":
        if pd.api.types.is_numeric_dtype(series) and spec.dtype in ("object", "string", "category", "str"):
            out.append(Breach(spec.name, "dtype", str(series.dtype), f"categorical ({spec.dtype})"))
            return out
        allowed = set(spec.categories or [])
        as_str = present.astype(str)
        unseen_mask = ~as_str.isin(allowed)
        ratio = float(unseen_mask.mean()) if len(as_str) else 0.0
        if ratio > contract.max_unseen_category_ratio:
            examples = sorted(as_str[unseen_mask].unique()[:3].tolist())
            out.append(
                Breach(
                    spec.name,
                    "allowed_categories",
                    f"{ratio:.2%} unseen (e.g. {examples})",
                    f"<= {contract.max_unseen_category_ratio:.0%} outside {len(allowed)} known categories",
                )
            )
    elif spec.kind == "datetime":
        if not pd.api.types.is_datetime64_any_dtype(series):
            parsed = pd.to_datetime(present, errors="coerce")
            if parsed.isna().any():
                out.append(
                    Breach(
                        spec.name,
                        "dtype",
                        f"{series.dtype} (unparseable e.g. {present[parsed.isna()].iloc[0]!r})",
                        "datetime",
                    )
                )
    return out


def enforce(frame: pd.DataFrame, contract: DataContract, require_label: bool = True) -> None:
    """Raise ContractViolation naming every breach."""
    breaches = check(frame, contract, require_label=require_label)
    if breaches:
        raise ContractViolation(breaches)
