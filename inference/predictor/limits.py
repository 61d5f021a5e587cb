"""Refuse request bodies over a size limit with 413 before they are read into memory or decoded."""

import json

from inference.asgi import send_json
from mlcycle.errors import MlcycleError


class BodyLimitMiddleware:
    """Pure ASGI middleware: checks Content-Length up front and counts streamed (chunked) bytes."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                return await _reply(send, 400, "invalid Content-Length header")
            if too_big:
                return await _reply(
                    send, 413, f"request body of {int(length)} bytes exceeds the limit of {self.max_bytes} bytes"
                )
        seen = 0
        replied = False

        async def limited_receive():
            nonlocal seen, replied
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    replied = True
                    await _reply(send, 413, f"request body exceeds the limit of {self.max_bytes} bytes")
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            if not replied:
                raise


class BodyTooLarge(MlcycleError):
    """A streamed request body passed the limit (the 413 reply is already sent)."""


async def _reply(send, status: int, message: str) -> None:
    await send_json(send, status, json.dumps({"error": message}).encode())


async def request_validation_handler(_, exc):
    """FastAPI answers a malformed V2 body with 422 and pydantic internals; answer 400 with one readable line."""
    from fastapi.responses import JSONResponse

    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors()[:5]
    )
    return JSONResponse({"error": f"invalid request body: {problems}"}, status_code=400)
