"""The lean front of the drift detector's event route: ``POST /`` and ``POST /events`` straight from ASGI.

KServe's payload logger posts one CloudEvent per request, so this route takes as many requests as the predictor
serves. Starlette's routing, ``Request``/``JSONResponse`` objects and header wrappers cost more than decoding a
small event; this wrapper sits outermost on the FastAPI app, reads the headers and body from the ASGI messages,
hands them to ``DriftService.offer`` (the same decoder and counters as before) and writes the answer with orjson.
Every other path and method goes to the FastAPI app unchanged. Bodies over ``max_body_bytes`` are refused with 413
before they are read whole (counted as ``too_large``).
"""

import orjson

from inference.asgi import TooLarge, install_outermost, read_body, send_json

EVENT_PATHS = ("/", "/events")


class FastEvents:
    def __init__(self, app, service, max_body_bytes: int):
        self.app, self.service, self.max_body_bytes = app, service, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in EVENT_PATHS:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return await self._too_large(send)
        try:
            body = await read_body(receive, self.max_body_bytes)
        except TooLarge:  # chunked or understated length
            return await self._too_large(send)
        if body is None:
            return
        status, answer = self.service.offer(headers, body)
        await send_json(send, status, orjson.dumps(answer))

    async def _too_large(self, send):
        self.service.refused("too_large")
        message = f"event body exceeds {self.max_body_bytes} bytes (--max_body_bytes)"
        await send_json(send, 413, orjson.dumps({"error": message, "reason": "too_large"}))


def install(app, service, max_body_bytes: int) -> None:
    """Put FastEvents outermost on the FastAPI ``app`` (Starlette builds the middleware stack on first use)."""
    install_outermost(app, lambda stack: FastEvents(stack, service, max_body_bytes))
