"""Decode KServe payload-logger CloudEvents (binary and structured mode, V1 and V2 bodies) into column arrays.

The envelope is read here; the inference request it carries is decoded by the predictor's own codec
(inference/predictor/codec.py), so a row enters a drift window exactly when the predictor would have
scored it. KServe's logger sends the request before the model sees it: rows the predictor refuses
with 400 arrive here too, and are refused again (``BadEvent.reason == "invalid_input"``), counted
apart and kept out of windows; in the embedded setup only accepted rows are forwarded, so both
setups test the same rows.
"""

import base64
import json

import orjson
from kserve.errors import InvalidInput

from inference.cloudevents import REQUEST_TYPE
from inference.predictor.codec import Batch, Codec
from mlcycle.errors import MlcycleError

REQUIRED = ("specversion", "id", "source", "type")
# Why an event was refused: the label of mlcycle_drift_events_rejected_total (a fixed, small set).
REASONS = ("not_cloudevent", "wrong_type", "not_json", "not_inference_request", "invalid_input", "too_large")


class BadEvent(MlcycleError, ValueError):
    """The event cannot be used; the message says why (sent back with HTTP 400), ``reason`` is one of REASONS and
    ``rows`` the number of rows the request carried (0 when it cannot be told). Still a ValueError
    for callers that catch bad input as one."""

    def __init__(self, message: str, reason: str = "invalid_input", rows: int = 0):
        super().__init__(message)
        self.reason, self.rows = reason, rows


def decode(headers: dict[str, str], body: bytes, codec: Codec, model_name: str = "model") -> Batch:
    """The rows of one payload-logger event, decoded and validated by ``codec``; BadEvent when refused."""
    return request_batch(request_data(headers, body), codec, model_name)


def request_data(headers: dict[str, str], body: bytes):
    """The inference request a CloudEvent carries (parsed JSON), after checking the envelope."""
    headers = {k.lower(): v for k, v in headers.items()}
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type == "application/cloudevents+json":
        envelope = _json(body, "structured CloudEvent", "not_cloudevent")
        if not isinstance(envelope, dict):
            raise BadEvent("structured CloudEvent must be a JSON object", "not_cloudevent")
        attrs = {k: envelope.get(k) for k in REQUIRED}
        if "data_base64" in envelope:
            try:
                raw = base64.b64decode(envelope["data_base64"], validate=True)
            except (ValueError, TypeError) as e:
                raise BadEvent(f"data_base64 is not valid base64: {e}", "not_cloudevent") from e
            data = _json(raw, "data_base64")
        else:
            data = envelope.get("data")
    else:
        # Binary mode: KServe's agent forwards the client's own Content-Type (a `curl -d` client sends
        # application/x-www-form-urlencoded), so any content type is read as the JSON body it carries.
        attrs = {k: headers.get(f"ce-{k}") for k in REQUIRED}
        data = _json(body, "event body")
    missing = [k for k, v in attrs.items() if not v]
    if missing:
        raise BadEvent(
            f"not a CloudEvent: missing attribute(s) {', '.join(missing)} (binary mode needs ce-* headers)",
            "not_cloudevent",
        )
    if attrs["type"] != REQUEST_TYPE:
        raise BadEvent(
            f"ce-type {attrs['type']!r} is not {REQUEST_TYPE!r}; configure the logger with mode: request", "wrong_type"
        )
    return data


def _json(raw: bytes, what: str, reason: str = "not_json"):
    if not raw:
        raise BadEvent(f"{what} is empty", reason)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses and Python's json reads (NaN/Infinity literals), as KServe's own REST path does
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadEvent(f"{what} is not valid JSON: {e}", reason) from e


def request_batch(data, codec: Codec, model_name: str = "model") -> Batch:
    """A V1 (``instances``, or ``inputs`` as records) or V2 (``inputs`` as named tensors) REST request body,
    decoded by the predictor's codec."""
    if not isinstance(data, dict):
        raise BadEvent(
            "inference request must be a JSON object with 'instances' (V1) or 'inputs' (V2)", "not_inference_request"
        )
    features = codec.names
    if isinstance(data.get("instances"), list) or (isinstance(data.get("inputs"), list) and not _is_v2(data["inputs"])):
        items = data["instances"] if isinstance(data.get("instances"), list) else data["inputs"]
        if not items:
            raise BadEvent("'instances' is empty")
        try:
            return codec.decode(data)
        except InvalidInput as e:
            if all(isinstance(r, dict) for r in items):  # the codec's rule, in the detector's words
                missing = [f for f in features if any(f not in r for r in items)]
                if missing:
                    raise BadEvent(f"event rows lack feature(s) {', '.join(missing)}", rows=len(items)) from e
            elif not all(isinstance(r, list) and len(r) == len(features) for r in items):
                raise BadEvent(
                    f"'instances' must be records or lists of {len(features)} values in feature order", rows=len(items)
                ) from e
            raise BadEvent(str(e), "invalid_input", len(items)) from e
    if isinstance(data.get("inputs"), list):
        lengths = {len(inp["data"]) for inp in data["inputs"]}
        if len(lengths) != 1 or 0 in lengths:
            raise BadEvent(f"V2 inputs must be non-empty and of equal length, got lengths {sorted(lengths)}")
        rows = lengths.pop()
        names = {inp["name"] for inp in data["inputs"]}
        missing = [f for f in features if f not in names]
        if missing:
            raise BadEvent(f"event rows lack feature(s) {', '.join(missing)}", rows=rows)
        try:
            return codec.decode(_v2_request(data, model_name))
        except InvalidInput as e:
            raise BadEvent(str(e), "invalid_input", rows) from e
    raise BadEvent("inference request has neither 'instances' (V1) nor 'inputs' (V2)", "not_inference_request")


def _is_v2(inputs: list) -> bool:
    return bool(inputs) and all(
        isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get("data"), list) for i in inputs
    )


def _v2_request(data: dict, model_name: str):
    """The InferRequest kserve's REST server builds from the same body (pydantic validation first, as it does)."""
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from pydantic import ValidationError

    try:
        request = InferenceRequest.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())) or 'body'}: {err.get('msg')}" for err in e.errors()[:5]
        )
        raise InvalidInput(f"invalid request body: {problems}") from e
    return InferRequest.from_inference_request(request, model_name)
