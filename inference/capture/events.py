"""Decode KServe payload-logger CloudEvents (request and response; binary and structured mode; V1 and V2)
into captured rows and predictions.

KServe's logger (``logger.mode: all``) sends two events per call with the same ``ce-id``: the request
body (``...inference.request``) and, for HTTP 200 only, the response body (``...inference.response``);
its worker pool may deliver them in either order. ``ce-id`` is the client's ``Ce-Id`` header or a fresh
uuid; headers listed in ``logger.metadataHeaders`` arrive as the JSON extension ``ce-metadata``.
"""

import base64
import json
import math
from dataclasses import dataclass, field

from inference.cloudevents import REQUEST_TYPE, RESPONSE_TYPE
from mlcycle.errors import MlcycleError

TYPES = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
REQUIRED = ("specversion", "id", "source", "type")
MAX_ROWS = 100_000


class BadEvent(MlcycleError, ValueError):
    """The event cannot be used; the message says why (sent back with HTTP 400)."""


@dataclass
class Event:
    kind: str  # request | response
    event_id: str
    request_id: str
    endpoint: str
    data: dict
    rows: list[dict] = field(default_factory=list)  # request: one record per row
    # response:
    model_version: str = ""
    predictions: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    classes: list | None = None


def decode(headers: dict[str, str], body: bytes, features: list[str] | None = None) -> Event:
    headers = {k.lower(): v for k, v in headers.items()}
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type == "application/cloudevents+json":
        envelope = _json(body, "structured CloudEvent")
        if not isinstance(envelope, dict):
            raise BadEvent("structured CloudEvent must be a JSON object")
        attrs = {k: envelope.get(k) for k in (*REQUIRED, "metadata", "endpoint")}
        if "data_base64" in envelope:
            try:
                data = _json(base64.b64decode(envelope["data_base64"], validate=True), "data_base64")
            except (ValueError, TypeError) as e:
                raise BadEvent(f"data_base64 is not valid base64: {e}") from e
        else:
            data = envelope.get("data")
    else:  # binary mode: KServe forwards the client's own Content-Type, so any type is read as JSON
        attrs = {k: headers.get(f"ce-{k}") for k in (*REQUIRED, "metadata", "endpoint")}
        data = _json(body, "event body")
    missing = [k for k in REQUIRED if not attrs.get(k)]
    if missing:
        raise BadEvent(f"not a CloudEvent: missing attribute(s) {', '.join(missing)} (binary mode needs ce-* headers)")
    kind = TYPES.get(attrs["type"])
    if kind is None:
        raise BadEvent(f"ce-type {attrs['type']!r} is neither {REQUEST_TYPE!r} nor {RESPONSE_TYPE!r}")
    if not isinstance(data, dict):
        raise BadEvent(f"inference {kind} must be a JSON object")
    event_id = str(attrs["id"])
    request_id = _request_id(attrs.get("metadata")) or event_id
    event = Event(kind, event_id, request_id, str(attrs.get("endpoint") or ""), data)
    if kind == "request":
        event.rows = request_rows(data, features)
    else:
        _response(event, data)
    return event


def _json(raw: bytes, what: str):
    if not raw:
        raise BadEvent(f"{what} is empty")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadEvent(f"{what} is not valid JSON: {e}") from e


def _request_id(metadata) -> str | None:
    """``X-Request-Id`` from KServe's metadata extension (``{"X-Request-Id": ["..."]}``), if it was forwarded."""
    if not metadata:
        return None
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            return None
    if not isinstance(metadata, dict):
        return None
    for key, value in metadata.items():
        if key.lower() == "x-request-id":
            value = value[0] if isinstance(value, list) and value else value
            return str(value) if value else None
    return None


def request_rows(data: dict, features: list[str] | None) -> list[dict]:
    inputs = data.get("inputs")
    if isinstance(inputs, list) and inputs and all(isinstance(i, dict) and "name" in i and "data" in i for i in inputs):
        return _v2_rows(inputs)
    items = data.get("instances", inputs)  # V1: "instances" (or "inputs") as records or lists in feature order
    if not isinstance(items, list):
        raise BadEvent("inference request has neither 'instances' (V1) nor 'inputs' (V2)")
    if not items:
        raise BadEvent("'instances' is empty")
    if len(items) > MAX_ROWS:
        raise BadEvent(f"{len(items)} rows in one event exceed {MAX_ROWS}")
    if all(isinstance(r, dict) for r in items):
        return items
    if all(isinstance(r, list) for r in items):
        if not features or any(len(r) != len(features) for r in items):
            raise BadEvent("'instances' given as lists need the model's feature order; send records")
        return [dict(zip(features, r, strict=False)) for r in items]
    raise BadEvent("'instances' must be all records or all lists")


def _v2_rows(inputs: list[dict]) -> list[dict]:
    columns = {}
    for inp in inputs:
        if not isinstance(inp.get("name"), str) or not isinstance(inp.get("data"), list):
            raise BadEvent("each V2 input needs a 'name' and a 'data' list")
        columns[inp["name"]] = _flat(inp["data"])
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise BadEvent(f"V2 inputs must be non-empty and of equal length, got lengths {sorted(lengths)}")
    n = lengths.pop()
    if n > MAX_ROWS:
        raise BadEvent(f"{n} rows in one event exceed {MAX_ROWS}")
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


def _flat(values: list) -> list:
    out = []
    for v in values:
        out.extend(_flat(v) if isinstance(v, list) else [v])
    return out


def _response(event: Event, data: dict) -> None:
    event.model_version = str(data.get("model_version") or "")
    if isinstance(data.get("predictions"), list):  # V1
        event.predictions = data["predictions"]
        probabilities = data.get("probabilities")
        event.classes = data.get("classes") if isinstance(data.get("classes"), list) else None
        event.scores = (
            _scores(probabilities, len(event.predictions))
            if probabilities is not None
            else [p if _number(p) else None for p in event.predictions]
        )
        return
    if isinstance(data.get("outputs"), list):  # V2
        outputs = {o.get("name"): o for o in data["outputs"] if isinstance(o, dict)}
        if "value" in outputs:
            event.predictions = _flat(outputs["value"].get("data") or [])
            event.scores = list(event.predictions)
            return
        if "label" not in outputs:
            raise BadEvent("V2 response has neither a 'label' nor a 'value' output")
        event.predictions = _flat(outputs["label"].get("data") or [])
        probs = outputs.get("probabilities") or {}
        shape = probs.get("shape") or []
        flat = _flat(probs.get("data") or [])
        names = (probs.get("parameters") or {}).get("classes")
        if isinstance(names, str) and names:
            numeric = outputs["label"].get("datatype", "").startswith(("INT", "UINT"))
            event.classes = [int(c) if numeric else c for c in names.split(",")]
        if len(shape) == 2 and shape[1] and len(flat) == shape[0] * shape[1]:
            k = shape[1]
            event.scores = _scores([flat[i * k : (i + 1) * k] for i in range(shape[0])], len(event.predictions))
        else:
            event.scores = [None] * len(event.predictions)
        return
    raise BadEvent("inference response has neither 'predictions' (V1) nor 'outputs' (V2)")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _scores(probabilities, n: int) -> list:
    if not isinstance(probabilities, list) or len(probabilities) != n:
        return [None] * n
    out = []
    for p in probabilities:
        if isinstance(p, list) and p and all(_number(x) for x in p):
            out.append(float(p[1]) if len(p) == 2 else float(max(p)))
        else:
            out.append(None)
    return out
