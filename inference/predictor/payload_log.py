"""Forward request payloads as CloudEvents, the way KServe's payload logger does (binary mode,
``ce-type: org.kubeflow.serving.inference.request``), for the embedded setup without KServe.

A bounded queue and one sender task: inference never waits on the sink; when the queue is full
the event is dropped and counted. In a cluster KServe's agent does this and this stays off.
"""

import asyncio
import json
import uuid

from prometheus_client import Counter

EVENT_TYPE = "org.kubeflow.serving.inference.request"
SENT = Counter("mlcycle_payload_log_sent_total", "Payload-log events delivered", ["model"])
DROPPED = Counter("mlcycle_payload_log_dropped_total", "Payload-log events dropped (queue full)", ["model"])
FAILED = Counter("mlcycle_payload_log_failed_total", "Payload-log events the sink refused or did not answer", ["model"])


class PayloadLogger:
    def __init__(self, url: str, model_name: str, queue_size: int = 1000, timeout: float = 2.0):
        self.url, self.model_name, self.timeout = url, model_name, timeout
        self.queue: asyncio.Queue | None = None
        self.queue_size = queue_size
        self._task: asyncio.Task | None = None

    def log(self, body: dict) -> None:
        if self.queue is None:  # first call happens on the server's event loop
            self.queue = asyncio.Queue(self.queue_size)
            self._task = asyncio.get_running_loop().create_task(self._send_forever())
        try:
            self.queue.put_nowait(body)
        except asyncio.QueueFull:
            DROPPED.labels(self.model_name).inc()

    async def _send_forever(self) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                body = await self.queue.get()
                headers = {
                    "content-type": "application/json", "ce-specversion": "1.0", "ce-id": str(uuid.uuid4()),
                    "ce-type": EVENT_TYPE, "ce-source": f"http://localhost/mlcycle/{self.model_name}",
                    "ce-inferenceservicename": self.model_name,
                }
                try:
                    response = await client.post(self.url, content=json.dumps(body), headers=headers)
                    (SENT if response.status_code < 300 else FAILED).labels(self.model_name).inc()
                except httpx.HTTPError:
                    FAILED.labels(self.model_name).inc()
