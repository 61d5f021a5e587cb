"""The routes the capture service and the drift detector both serve: ``GET /metrics`` and ``GET /healthz``."""

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest


def add_probes(app: FastAPI, registry: Callable[[], CollectorRegistry]) -> None:
    """``GET /metrics``: ``registry()`` (read on each scrape) as Prometheus text; ``GET /healthz``: liveness."""

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(registry()), media_type="text/plain; version=0.0.4")

    @app.get("/healthz")
    async def healthz():
        return {"live": True}
