"""Decode KServe payload-logger CloudEvents (binary and structured mode, V1 and V2 bodies) into rows."""

import base64
import json

import pandas as pd

from mlcycle.errors import MlcycleError

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
REQUIRED = ("specversion", "id", "source", "type")


class BadEvent(MlcycleError, ValueError):
    """The event cannot be used; the message says why (sent back with HTTP 400). Still a ValueError for callers
    that catch bad input as one."""


def decode(headers: dict[str, str], body: bytes, features: list[str]) -> pd.DataFrame:
    headers = {k.lower(): v for k, v in headers.items()}
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type == "application/cloudevents+json":
        envelope = _json(body, "structured CloudEvent")
        if not isinstance(envelope, dict):
            raise BadEvent("structured CloudEvent must be a JSON object")
        attrs = {k: envelope.get(k) for k in REQUIRED}
        if "data_base64" in envelope:
            try:
                data = _json(base64.b64decode(envelope["data_base64"], validate=True), "data_base64")
            except (ValueError, TypeError) as e:
                raise BadEvent(f"data_base64 is not valid base64: {e}") from e
        else:
            data = envelope.get("data")
    else:
        # Binary mode: KServe's agent forwards the client's own Content-Type (a `curl -d` client sends
        # application/x-www-form-urlencoded), so any content type is read as the JSON body it carries.
        attrs = {k: headers.get(f"ce-{k}") for k in REQUIRED}
        data = _json(body, "event body")
    missing = [k for k, v in attrs.items() if not v]
    if missing:
        raise BadEvent(f"not a CloudEvent: missing attribute(s) {', '.join(missing)} (binary mode needs ce-* headers)")
    if attrs["type"] != REQUEST_TYPE:
        raise BadEvent(f"ce-type {attrs['type']!r} is not {REQUEST_TYPE!r}; configure the logger with mode: request")
    return rows(data, features)


def _json(raw: bytes, what: str):
    if not raw:
        raise BadEvent(f"{what} is empty")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadEvent(f"{what} is not valid JSON: {e}") from e


def rows(data, features: list[str]) -> pd.DataFrame:
    if not isinstance(data, dict):
        raise BadEvent("inference request must be a JSON object with 'instances' (V1) or 'inputs' (V2)")
    if isinstance(data.get("instances"), list):
        items = data["instances"]
        if not items:
            raise BadEvent("'instances' is empty")
        if all(isinstance(r, dict) for r in items):
            frame = pd.DataFrame.from_records(items)
        elif all(isinstance(r, list) and len(r) == len(features) for r in items):
            frame = pd.DataFrame(items, columns=features)
        else:
            raise BadEvent(f"'instances' must be records or lists of {len(features)} values in feature order")
    elif isinstance(data.get("inputs"), list):
        columns = {}
        for inp in data["inputs"]:
            if not isinstance(inp, dict) or not isinstance(inp.get("name"), str) or not isinstance(inp.get("data"), list):
                raise BadEvent("each V2 input needs a 'name' and a 'data' list")
            columns[inp["name"]] = inp["data"]
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise BadEvent(f"V2 inputs must be non-empty and of equal length, got lengths {sorted(lengths)}")
        frame = pd.DataFrame(columns)
    else:
        raise BadEvent("inference request has neither 'instances' (V1) nor 'inputs' (V2)")
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise BadEvent(f"event rows lack feature(s) {', '.join(missing)}")
    return frame[features]
