"""Request decoding and validation against the version's data contract; response encoding.

Input policy (README "Input policy"):
- features by name: V1 ``instances``/``inputs`` as records (or rows in contract order), V2 one
  named input per feature, shape [n] or [n, 1];
- every feature required, unknown names refused;
- numeric features take numbers (not strings, not booleans: V1 and V2 alike); categorical features take strings
  from the training categories;
- null / NaN only where the feature had missing values in training (the model's imputer fills
  them); infinity never;
- 1 <= rows <= max_batch_rows.
Every violation raises kserve's InvalidInput (HTTP 400 / gRPC INVALID_ARGUMENT) naming the field.
"""

import math
from dataclasses import dataclass

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse, deserialize_bytes_tensor

from mlcycle.contract import DataContract

_NUMBER_TYPES = frozenset((int, float, type(None)))
NUMERIC_V2 = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"}
# The numeric gRPC datatypes the lean path decodes itself: their contents field and raw dtype. Every value these
# protobuf fields can hold is in range for the datatype, so KServe's checks can only pass (others: KServe's path).
_IGNORED_INPUT_PARAMETERS = {"binary_data_size"}
GRPC_NUMERIC = {
    "FP64": ("fp64_contents", np.float64),
    "FP32": ("fp32_contents", np.float32),
    "INT64": ("int64_contents", np.int64),
    "INT32": ("int_contents", np.int32),
}


@dataclass
class Batch:
    columns: dict[str, np.ndarray]
    n: int


class Codec:
    def __init__(self, contract: DataContract, max_batch_rows: int = 10_000):
        self.contract = contract
        self.max_batch_rows = max_batch_rows
        self.names = contract.feature_names
        self.specs = {c.name: c for c in contract.features}
        self.nullable = {c.name for c in contract.features if c.max_null_ratio > 0}
        self.allowed = {c.name: set(c.categories or []) for c in contract.features if c.kind == "categorical"}
        self.name_set = set(self.names)
        self.is_categorical = [c.kind == "categorical" for c in contract.features]

    # decoding ---------------------------------------------------------------------------
    def decode(self, payload) -> Batch:
        if isinstance(payload, InferRequest):
            return self._decode_v2(payload)
        if isinstance(payload, dict):
            return self._decode_v1(payload)
        if isinstance(payload, (bytes, bytearray)):
            raise InvalidInput("request body must be JSON sent with Content-Type: application/json")
        raise InvalidInput(f"unsupported request body of type {type(payload).__name__}")

    def _check_rows(self, n: int) -> None:
        if n == 0:
            raise InvalidInput("empty batch: send at least one row")
        if n > self.max_batch_rows:
            raise InvalidInput(f"batch of {n} rows exceeds max_batch_rows={self.max_batch_rows}")

    def _decode_v1(self, body: dict) -> Batch:
        keys = [k for k in ("instances", "inputs") if k in body]
        if len(keys) != 1:
            raise InvalidInput('V1 body needs exactly one of "instances" or "inputs" (a list of records)')
        rows = body[keys[0]]
        if not isinstance(rows, list):
            raise InvalidInput(f'"{keys[0]}" must be a list of records, got {type(rows).__name__}')
        self._check_rows(len(rows))
        if all(isinstance(r, dict) for r in rows):
            names = set().union(*(r.keys() for r in rows))
            self._check_names(names)
            for i, r in enumerate(rows):
                missing = [f for f in self.names if f not in r]
                if missing:
                    raise InvalidInput(f"instance {i}: missing feature(s) {', '.join(missing)}")
            columns = {name: [r[name] for r in rows] for name in self.names}
        elif all(isinstance(r, list) for r in rows):
            for i, r in enumerate(rows):
                if len(r) != len(self.names):
                    raise InvalidInput(
                        f"instance {i}: {len(r)} values, expected {len(self.names)} in order {', '.join(self.names)}"
                    )
            columns = {name: [r[j] for r in rows] for j, name in enumerate(self.names)}
        else:
            raise InvalidInput(
                "instances must all be records (objects keyed by feature name) or all be lists in feature order"
            )
        return Batch({name: self._column(name, values) for name, values in columns.items()}, len(rows))

    def _decode_v2(self, request: InferRequest) -> Batch:
        inputs = request.inputs or []
        if not inputs:
            raise InvalidInput("empty inputs: send one named input per feature")
        by_name = {}
        for inp in inputs:
            if inp.name in by_name:
                raise InvalidInput(f"input '{inp.name}' given twice")
            by_name[inp.name] = inp
        self._check_names(set(by_name))
        missing = [f for f in self.names if f not in by_name]
        if missing:
            raise InvalidInput(f"missing feature(s) {', '.join(missing)}")
        n = None
        columns = {}
        for name in self.names:
            inp = by_name[name]
            shape = list(inp.shape)
            if not shape or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1) or any(d < 0 for d in shape):
                raise InvalidInput(f"input '{name}': shape {shape} must be [n] or [n, 1]")
            if n is None:
                n = shape[0]
                self._check_rows(n)
            elif shape[0] != n:
                raise InvalidInput(f"input '{name}': {shape[0]} rows, but other inputs have {n}")
            kind = self.specs[name].kind
            if kind == "numeric" and inp.datatype not in NUMERIC_V2:
                raise InvalidInput(
                    f"input '{name}': datatype {inp.datatype} not allowed for a numeric feature (use FP64, FP32 or INT*)"
                )
            if kind == "categorical" and inp.datatype != "BYTES":
                raise InvalidInput(
                    f"input '{name}': datatype {inp.datatype} not allowed for a categorical feature (use BYTES)"
                )
            if kind == "numeric":
                _check_numbers(name, inp)
            _check_integer_range(name, inp)
            try:  # FP64 lists: exactly what as_numpy() does, without its dtype dispatch (gRPC raw inputs have data [])
                if inp.datatype == "FP64" and isinstance(inp.data, list) and inp.data:
                    values = np.array(inp.data, dtype=np.float64).reshape(shape)
                else:
                    values = inp.as_numpy()
            except InvalidInput:
                raise
            except (ValueError, TypeError, OverflowError) as e:
                raise InvalidInput(
                    f"input '{name}': data does not match shape {shape} / datatype {inp.datatype}: {e}"
                ) from e
            values = values.reshape(-1)
            if values.size != n:
                raise InvalidInput(f"input '{name}': {values.size} values for shape {shape}")
            columns[name] = self._column(name, values.tolist() if kind == "categorical" else values)
        return Batch(columns, n)

    def decode_grpc(self, request: pb.ModelInferRequest, max_rows: int) -> Batch | None:
        """The batch ``decode(InferRequest.from_grpc(request))`` gives, read straight from the protobuf; None
        unless that would succeed with exactly this batch (anything odd, any error: KServe's own path answers it).

        The plain case: one input per feature, no parameters (but ``binary_data_size``, which KServe's client
        sets on raw inputs and its gRPC path ignores), no requested outputs, shape [n] or [n, 1],
        1 <= n <= min(max_rows, max_batch_rows), numeric features in FP64/FP32/INT64/INT32 and categorical ones in
        BYTES, as typed contents or as raw_input_contents (all inputs one way, as KServe requires)."""
        inputs = request.inputs
        raw = request.raw_input_contents
        if len(inputs) != len(self.names) or request.parameters or request.outputs or (raw and len(raw) != len(inputs)):
            return None
        names = [t.name for t in inputs]
        if names == self.names:  # the usual order: the model's metadata lists the inputs this way
            order = range(len(names))
        else:
            by_name = {name: i for i, name in enumerate(names)}
            if by_name.keys() != self.name_set:  # a name twice, or an unknown one: fewer or other keys
                return None
            order = [by_name[name] for name in self.names]
        n = inputs[0].shape[0] if inputs[0].shape else 0
        if not 1 <= n <= self.max_batch_rows or n > max_rows:
            return None
        flat: list = []  # the numeric features' values one after the other, in contract order
        categorical = []
        for i, categorical_feature in zip(order, self.is_categorical, strict=True):
            t = inputs[i]
            shape = t.shape
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] != n:
                return None
            if t.parameters and t.parameters.keys() - _IGNORED_INPUT_PARAMETERS:
                return None
            if raw:
                if t.HasField("contents"):
                    return None
                values = _raw_values(t.datatype, raw[i], categorical_feature)
            elif categorical_feature:
                values = t.contents.bytes_contents if t.datatype == "BYTES" else None
            else:
                field = GRPC_NUMERIC.get(t.datatype)
                values = getattr(t.contents, field[0]) if field else None
            if values is None or len(values) != n:
                return None
            if categorical_feature:
                categorical.append(values)
            else:
                flat.extend(values)
        matrix = np.array(flat, dtype=np.float64).reshape(-1, n)
        finite = np.isfinite(matrix).all()
        columns = {}
        rows, cats = iter(matrix), iter(categorical)
        try:
            for name, categorical_feature in zip(self.names, self.is_categorical, strict=True):
                if categorical_feature:
                    columns[name] = self._column(name, next(cats))
                else:  # NaN (allowed or not) and infinity: the per-feature checks decide, as on KServe's path
                    row = next(rows)
                    columns[name] = row if finite else self._column(name, row)
        except InvalidInput:
            return None
        return Batch(columns, n)

    def _check_names(self, names: set) -> None:
        unknown = sorted(str(x) for x in names - self.name_set)
        if unknown:
            raise InvalidInput(f"unknown feature(s) {', '.join(unknown)}; the model takes {', '.join(self.names)}")

    def _column(self, name: str, values) -> np.ndarray:
        spec = self.specs[name]
        if spec.kind == "numeric":
            if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
                out = values.astype(np.float64)
            elif isinstance(values, list) and _NUMBER_TYPES.issuperset(map(type, values)):
                out = np.array(values, dtype=np.float64)  # ints, floats and None (-> NaN) in one C-level pass
            else:
                out = np.empty(len(values), dtype=np.float64)
                for i, v in enumerate(values):
                    if v is None:
                        out[i] = np.nan
                    elif isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise InvalidInput(
                            f"feature '{name}' row {i}: expected a number, got {type(v).__name__} {_short(v)}"
                        )
                    else:
                        out[i] = v
            if np.isfinite(out).all():  # the common case in one pass
                return out
            if np.isinf(out).any():
                raise InvalidInput(
                    f"feature '{name}' row {int(np.flatnonzero(np.isinf(out))[0])}: infinity is not allowed"
                )
            if name not in self.nullable and np.isnan(out).any():
                raise InvalidInput(
                    f"feature '{name}' row {int(np.flatnonzero(np.isnan(out))[0])}: null/NaN not allowed (never missing in training)"
                )
            return out
        allowed = self.allowed[name]
        out = np.empty(len(values), dtype=object)
        try:  # the common case in one C-level pass: every value a known category (the allowed set holds only str)
            if allowed.issuperset(values):
                out[:] = values
                return out
        except TypeError:  # an unhashable value: the loop below names it
            pass
        for i, v in enumerate(values):
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InvalidInput(f"feature '{name}' row {i}: bytes are not valid UTF-8") from e
            if v is None or (isinstance(v, float) and math.isnan(v)):
                if name not in self.nullable:
                    raise InvalidInput(f"feature '{name}' row {i}: null not allowed (never missing in training)")
                out[i] = None
            elif not isinstance(v, str):
                raise InvalidInput(
                    f"feature '{name}' row {i}: expected a string category, got {type(v).__name__} {_short(v)}"
                )
            elif v not in allowed:
                raise InvalidInput(
                    f"feature '{name}' row {i}: unknown category {_short(v)}; allowed: {', '.join(sorted(allowed))}"
                )
            else:
                out[i] = v
        return out

    # encoding ---------------------------------------------------------------------------
    def encode_v1(self, scores: np.ndarray, labels, classes, version: str) -> dict:
        if self.contract.task == "regression":
            return {"predictions": scores.tolist(), "model_version": version}
        return {
            "predictions": list(labels),
            "probabilities": scores.tolist(),
            "classes": classes,
            "model_version": version,
        }

    def encode_v2(
        self, request: InferRequest, model_name: str, scores: np.ndarray, labels, classes, version: str
    ) -> InferResponse:
        n = len(scores)
        if self.contract.task == "regression":
            outputs = [InferOutput("value", [n], "FP64", scores.astype(np.float64).tolist())]
        else:
            numeric = all(isinstance(c, int) for c in classes)
            outputs = [
                InferOutput(
                    "label", [n], "INT64" if numeric else "BYTES", [int(x) if numeric else str(x) for x in labels]
                ),
                InferOutput(
                    "probabilities",
                    [n, len(classes)],
                    "FP64",
                    scores.astype(np.float64).reshape(-1).tolist(),
                    parameters={"classes": ",".join(map(str, classes))},
                ),
            ]
        return InferResponse(
            response_id=request.id or "",
            model_name=model_name,
            infer_outputs=outputs,
            model_version=version,
            from_grpc=request.from_grpc,
        )

    def encode_v2_rest(
        self, request_id: str | None, model_name: str, scores: np.ndarray, labels, classes, version: str
    ) -> dict:
        """The JSON body KServe's REST endpoint writes for ``encode_v2(...)``, built directly (the lean REST front)."""
        n = len(scores)
        if self.contract.task == "regression":
            outputs = [
                {
                    "name": "value",
                    "shape": [n],
                    "datatype": "FP64",
                    "parameters": None,
                    "data": scores.astype(np.float64).tolist(),
                }
            ]
        else:
            numeric = all(isinstance(c, int) for c in classes)
            outputs = [
                {
                    "name": "label",
                    "shape": [n],
                    "datatype": "INT64" if numeric else "BYTES",
                    "parameters": None,
                    "data": [int(x) if numeric else str(x) for x in labels],
                },
                {
                    "name": "probabilities",
                    "shape": [n, len(classes)],
                    "datatype": "FP64",
                    "parameters": {"classes": ",".join(map(str, classes))},
                    "data": scores.astype(np.float64).reshape(-1).tolist(),
                },
            ]
        return {
            "model_name": model_name,
            "model_version": version,
            "id": request_id or "",
            "parameters": None,
            "outputs": outputs,
        }

    def encode_v2_grpc(
        self, request_id: str, model_name: str, scores: np.ndarray, labels, classes, version: str
    ) -> pb.ModelInferResponse:
        """The message KServe's gRPC servicer sends for ``encode_v2(...)`` (``InferResponse.to_grpc()``), built
        directly (the lean gRPC front; tests/unit/test_fastgrpc.py compares the serialized bytes)."""
        n = len(scores)
        if self.contract.task == "regression":
            outputs = [
                pb.ModelInferResponse.InferOutputTensor(
                    name="value",
                    datatype="FP64",
                    shape=[n],
                    contents=pb.InferTensorContents(fp64_contents=scores.astype(np.float64).tolist()),
                )
            ]
        else:
            numeric = all(isinstance(c, int) for c in classes)
            if numeric:
                label = pb.InferTensorContents(int64_contents=[int(x) for x in labels])
            else:
                label = pb.InferTensorContents(bytes_contents=[str(x).encode() for x in labels])
            outputs = [
                pb.ModelInferResponse.InferOutputTensor(
                    name="label", datatype="INT64" if numeric else "BYTES", shape=[n], contents=label
                ),
                pb.ModelInferResponse.InferOutputTensor(
                    name="probabilities",
                    datatype="FP64",
                    shape=[n, len(classes)],
                    parameters={"classes": pb.InferParameter(string_param=",".join(map(str, classes)))},
                    contents=pb.InferTensorContents(fp64_contents=scores.astype(np.float64).reshape(-1).tolist()),
                ),
            ]
        return pb.ModelInferResponse(model_name=model_name, model_version=version, id=request_id, outputs=outputs)


def _raw_values(datatype: str, data: bytes, categorical: bool) -> list | None:
    """One raw_input_contents tensor as Python values, as KServe's ``as_numpy()`` reads it; None if it cannot."""
    if categorical:
        if datatype != "BYTES":
            return None
        try:
            return deserialize_bytes_tensor(data).tolist()
        except Exception:  # a malformed length prefix: KServe's path says what is wrong
            return None
    field = GRPC_NUMERIC.get(datatype)
    if field is None or len(data) % np.dtype(field[1]).itemsize:
        return None
    return np.frombuffer(data, dtype=field[1]).tolist()


def _check_numbers(name: str, inp) -> None:
    """V2 REST data for a numeric input holds JSON numbers (or null): not numeric strings such as "17.99", not
    booleans — the same rule as V1. (gRPC contents are typed by the protocol already.)"""
    if not isinstance(inp.data, list):
        return
    if _NUMBER_TYPES.issuperset(map(type, inp.data)):  # flat numbers / nulls (bool is not in the set)
        return
    stack, index = [inp.data], 0
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        if item is not None and (isinstance(item, bool) or not isinstance(item, (int, float))):
            raise InvalidInput(
                f"input '{name}' value {index}: expected a number for datatype {inp.datatype}, "
                f"got {type(item).__name__} {_short(item)}"
            )
        index += 1


def _check_integer_range(name: str, inp) -> None:
    """JSON numbers cast silently into INT8..UINT64 would wrap around or truncate: refuse them instead."""
    if not inp.datatype.startswith(("INT", "UINT")) or not isinstance(inp.data, list):
        return
    try:
        values = np.asarray(inp.data, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"input '{name}': data is not numeric for datatype {inp.datatype}") from e
    info = np.iinfo(np.dtype(inp.datatype.lower()))
    bad = np.flatnonzero((values < info.min) | (values > info.max))
    if bad.size:
        raise InvalidInput(f"input '{name}': value {inp.data[bad[0]]!r} out of range for {inp.datatype}")
    fractional = np.flatnonzero(values != np.floor(values))
    if fractional.size:
        raise InvalidInput(f"input '{name}': value {inp.data[fractional[0]]!r} is not an integer ({inp.datatype})")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
