"""HTTP face of the capture service (FastAPI, like the drift detector).

``POST /events`` (or ``/``)  payload-logger CloudEvents, request and response (binary or structured mode)
``POST /v1/feedback``       late labels: ``{"labels": [{"request_id": "...", "label": 1, "row": 0}, ...]}``
``GET /status``             counts, refusals, restart info, online metrics per model version (JSON)
``GET /metrics``            the same as Prometheus metrics
``POST /flush``             write the buffered rows now (tests, ``make`` targets)
``GET /healthz``            liveness
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from inference.capture.service import CaptureService
from inference.probes import add_probes


def create_app(service: CaptureService) -> FastAPI:
    app = FastAPI(title="mlcycle traffic capture", docs_url=None, redoc_url=None)

    @app.on_event("startup")
    async def _start():
        service.recover()
        service.start()

    @app.on_event("shutdown")
    async def _stop():
        await service.stop()

    @app.post("/")
    @app.post("/events")
    async def events(request: Request):
        status, body = service.offer(dict(request.headers), await request.body())
        return JSONResponse(body, status_code=status)

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        status, body = await service.feedback(await request.body())
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
