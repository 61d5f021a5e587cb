"""HTTP face of the capture service (FastAPI, like the drift detector).

``POST /events`` (or ``/``)  payload-logger CloudEvents, request and response (binary or structured mode)
``POST /v1/feedback``       late labels: ``{"labels": [{"request_id": "...", "label": 1, "row": 0}, ...]}``
``GET /status``             counts, refusals, restart info, online metrics per model version (JSON)
``GET /metrics``            the same as Prometheus metrics
``POST /flush``             write the buffered rows now (tests, ``make`` targets)
``GET /healthz``            liveness

A POST body over ``max_body_bytes`` is refused with 413 before it is read whole (a Content-Length over the limit at
once; a chunked body as soon as it passes it), counted in ``mlcycle_capture_bodies_refused_total{route}``.
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from inference.asgi import TooLarge, read_body
from inference.capture.service import CaptureService
from inference.probes import add_probes
from mlcycle.defaults import MAX_BODY_BYTES


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than ``limit`` bytes: at once from a Content-Length, else as soon as the
    chunks read pass it (``inference.asgi.read_body``, which the predictor and the drift detector use too)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    try:
        return await read_body(request.receive, limit) or b""  # None: the client went away
    except TooLarge:
        return None


def create_app(service: CaptureService, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="mlcycle traffic capture", docs_url=None, redoc_url=None)

    @app.on_event("startup")
    async def _start():
        service.recover()
        service.start()

    @app.on_event("shutdown")
    async def _stop():
        await service.stop()

    def too_large(route: str) -> JSONResponse:
        service.metrics.too_large.labels(route=route).inc()
        return JSONResponse({"error": f"request body over {max_body_bytes} bytes"}, status_code=413)

    @app.post("/")
    @app.post("/events")
    async def events(request: Request):
        raw = await read_limited(request, max_body_bytes)
        if raw is None:
            return too_large("events")
        status, body = service.offer(dict(request.headers), raw)
        return JSONResponse(body, status_code=status)

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        raw = await read_limited(request, max_body_bytes)
        if raw is None:
            return too_large("feedback")
        status, body = await service.feedback(raw)
        return JSONResponse(body, status_code=status)

    @app.get("/status")
    async def status():
        return service.status()

    @app.post("/flush")
    async def flush():
        service.expire()
        result = await service.flush()
        return {"flush": result, **service.status()}

    add_probes(app, lambda: service.metrics.registry)

    return app
