"""Forward request payloads as CloudEvents, the way KServe's payload logger does (binary mode,
``ce-type: org.kubeflow.serving.inference.request``), for the embedded setup without KServe.

With ``MLCYCLE_PAYLOAD_LOG_MODE=all`` (KServe's ``logger.mode: all``) the response follows as a second
event (``...inference.response``) with the same ``ce-id``: the request id the predictor returns as
``x-request-id``, so late labels can name it.

A bounded queue and one sender task: inference never waits on the sink; when the queue is full
the event is dropped and counted. In a cluster KServe's agent does this and this stays off.
"""

import asyncio
import json
import os
import uuid

from prometheus_client import Counter

from inference.cloudevents import REQUEST_TYPE as EVENT_TYPE
from inference.cloudevents import RESPONSE_TYPE, ce_headers

SENT = Counter("mlcycle_payload_log_sent_total", "Payload-log events delivered", ["model"])
DROPPED = Counter("mlcycle_payload_log_dropped_total", "Payload-log events dropped (queue full)", ["model"])
FAILED = Counter("mlcycle_payload_log_failed_total", "Payload-log events the sink refused or did not answer", ["model"])


class PayloadLogger:
    def __init__(
        self, url: str, model_name: str, queue_size: int = 1000, timeout: float = 2.0, mode: str | None = None
    ):
        self.url, self.model_name, self.timeout = url, model_name, timeout
        self.mode = mode or os.environ.get("MLCYCLE_PAYLOAD_LOG_MODE", "request")
        self.queue: asyncio.Queue | None = None
        self.queue_size = queue_size
        self._task: asyncio.Task | None = None

    def log(self, body: dict, request_id: str | None = None, response=None) -> None:
        if self.queue is None:  # first call happens on the server's event loop
            self.queue = asyncio.Queue(self.queue_size)
            self._task = asyncio.get_running_loop().create_task(self._send_forever())
        request_id = request_id or str(uuid.uuid4())
        events = [(EVENT_TYPE, body)]
        if self.mode == "all" and response is not None:
            events.append((RESPONSE_TYPE, response.to_rest()[0] if hasattr(response, "to_rest") else response))
        for event in events:
            try:
                self.queue.put_nowait((request_id, *event))
            except asyncio.QueueFull:
                DROPPED.labels(self.model_name).inc()

    async def _send_forever(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                request_id, event_type, body = await self.queue.get()
                source, extra = (
                    f"http://localhost/mlcycle/{self.model_name}",
                    {"ce-inferenceservicename": self.model_name},
                )
                headers = ce_headers(request_id, event_type, source, extra)
                try:
                    content = body if isinstance(body, bytes) else json.dumps(body)
                    response = await client.post(self.url, content=content, headers=headers)
                    (SENT if response.status_code < 300 else FAILED).labels(self.model_name).inc()
                except httpx.HTTPError:
                    FAILED.labels(self.model_name).inc()
