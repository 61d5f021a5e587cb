"""The lean REST front: V1 ``:predict`` and V2 ``/infer`` for the served model, without FastAPI's per-request work.

KServe's REST stack spends most of a one-row request outside the model (README "Benchmarks": routing,
TimingMiddleware, pydantic ``InferenceRequest``/``InferenceResponse``, jsonable_encoder). This ASGI wrapper
sits outermost on KServe's own FastAPI app (``kserve.ModelServer`` still owns the server, probes, metadata,
gRPC, /metrics and every other route). It takes a request only when it is the plain case — POST, JSON
content type, a Content-Length within ``max_body_bytes``, a body that orjson parses into the shape pydantic
would accept unchanged (V2: ``inputs`` of ``name``/``shape``/``datatype``/flat ``data``, no parameters, no
requested outputs) — builds KServe's ``InferRequest`` directly, calls the model's own ``predict`` and writes the
response with orjson: the same JSON KServe writes (tests/unit/test_fastrest.py compares them). Anything else
(binary tensors, odd types, other paths, model not ready) is replayed unchanged to KServe's app, so bad-input
answers are KServe's own.
"""

import logging
import time

import orjson
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from inference.asgi import install_outermost, read_body, send_json
from inference.predictor.model import request_id_of

access = logging.getLogger("mlcycle.access")


class FastRest:
    def __init__(self, app, model, max_body_bytes: int, access_log: bool = False):
        self.app, self.model, self.max_body_bytes, self.access_log = app, model, max_body_bytes, access_log
        self.v1 = f"/v1/models/{model.name}:predict"
        self.v2 = f"/v2/models/{model.name}/infer"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in (self.v1, self.v2):
            return await self.app(scope, receive, send)
        length = content_type = request_id = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key == b"content-type":
                content_type = value
            elif key == b"x-request-id":
                request_id = value.decode("latin-1")
            elif key.startswith((b"inference-header", b"ce-")):  # V2 binary tensors, binary CloudEvents: KServe's path
                return await self.app(scope, receive, send)
        if (
            not self.model.ready
            or length is None
            or not length.isdigit()
            or int(length) > self.max_body_bytes
            or content_type != b"application/json"  # KServe treats "application/json; charset=…" as not JSON
        ):
            return await self.app(scope, receive, send)
        body = await read_body(receive)  # within max_body_bytes: the server holds a body to its Content-Length
        if body is None:
            return
        start = time.perf_counter()
        payload = _parse(body, scope["path"] == self.v2, self.model.name)
        if payload is None:
            return await self.app(scope, _replay(body, receive), send)
        request_id = request_id_of({"x-request-id": request_id} if request_id else None)
        try:
            if isinstance(payload, dict):
                status, out = 200, orjson.dumps(await self.model.predict(payload, {"x-request-id": request_id}))
            else:
                m = self.model
                scores, labels = await m.score(payload)
                body = m.codec.encode_v2_rest(payload.id, m.name, scores, labels, m.bundle.classes, m.version)
                out = orjson.dumps(body)
                status = 200
                m.log_payload(payload, request_id, body)
        except InvalidInput as e:
            status, out = 400, orjson.dumps({"error": str(e)})
        except InferenceError as e:
            status, out = 500, orjson.dumps({"error": str(e)})
        except Exception as e:  # the answer KServe's generic handler gives
            logging.getLogger("mlcycle").exception("prediction failed")
            status, out = 500, orjson.dumps({"error": f"{type(e).__name__} : {e}"})
        await send_json(send, status, out, ((b"x-request-id", request_id.encode()),))
        if self.access_log:
            client = scope.get("client") or ("-", 0)
            access.info(
                '%s:%s - "POST %s HTTP/%s" %d %.3fms',
                client[0],
                client[1],
                scope["path"],
                scope.get("http_version"),
                status,
                (time.perf_counter() - start) * 1000,
            )


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _parse(body: bytes, v2: bool, model_name: str):
    """The request KServe would build from ``body``, or None when only KServe's own path can answer it exactly."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if not v2:  # KServe's own checks and messages for anything but one list of instances/inputs, no CloudEvent
        keys = [k for k in ("instances", "inputs") if k in doc]
        return doc if len(keys) == 1 and isinstance(doc[keys[0]], list) and "specversion" not in doc else None
    if (
        not set(doc) <= {"id", "inputs"}
        or not isinstance(doc.get("inputs"), list)
        or not isinstance(doc.get("id", ""), str)
    ):
        return None
    inputs = []
    for item in doc["inputs"]:
        if not isinstance(item, dict) or not set(item) <= {"name", "shape", "datatype", "data"}:
            return None
        name, shape, datatype, data = item.get("name"), item.get("shape"), item.get("datatype"), item.get("data")
        if not (
            isinstance(name, str) and isinstance(datatype, str) and isinstance(shape, list) and isinstance(data, list)
        ):
            return None
        if not all(type(d) is int for d in shape) or not _flat_scalars(data) or datatype == "FP16":
            return None
        inputs.append(InferInput(name=name, shape=shape, datatype=datatype, data=data, parameters={}))
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=doc.get("id"))


def _flat_scalars(data: list) -> bool:
    """All ints/floats/None or all strings/None: what pydantic's data union keeps as it is."""
    kinds = set(map(type, data))
    kinds.discard(type(None))
    return kinds <= {int, float} or kinds == {str}


def install(app, model, max_body_bytes: int, access_log: bool = False) -> None:
    """Put FastRest outermost on KServe's FastAPI ``app`` (Starlette builds the middleware stack on first use)."""
    install_outermost(app, lambda stack: FastRest(stack, model, max_body_bytes, access_log))


def configure_rest(app, model, max_body_bytes: int, fast_rest: bool = True, access_log: bool = False) -> None:
    """mlcycle's additions to KServe's FastAPI ``app``: body limits, readable 400s, the lean front, access-log choice.

    Called by ``__main__`` and again in every REST worker process ``--workers`` starts (MlcycleModel.__setstate__)."""
    from fastapi.exceptions import RequestValidationError

    from inference.predictor.limits import BodyLimitMiddleware, request_validation_handler

    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    if fast_rest:
        install(app, model, max_body_bytes, access_log=access_log)
    quiet_access_log(access_log)


def quiet_access_log(access_log: bool) -> None:
    """Uvicorn formats an access line per request only when its logger has handlers: none unless asked for."""
    if not access_log:
        logger = logging.getLogger("uvicorn.access")
        logger.handlers, logger.propagate = [], False
