"""The plain ASGI pieces the lean fronts share (``inference/predictor/fastrest.py``, ``limits.py``,
``inference/drift_detector/fastevents.py``): read a request body, answer JSON, sit outermost on a Starlette app."""

from mlcycle.errors import MlcycleError

JSON_HEADER = (b"content-type", b"application/json")


class TooLarge(MlcycleError):
    """The body being read passed the limit (chunked, or more than its Content-Length said)."""


async def read_body(receive, limit: int | None = None) -> bytes | None:
    """The whole request body; None when the client went away first; TooLarge past ``limit`` bytes."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # client went away
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise TooLarge(size)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send, status: int, body: bytes, headers: tuple = ()) -> None:
    """``body`` (JSON bytes) as the whole response, with its length and any extra ``headers``."""
    start = [JSON_HEADER, (b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def install_outermost(app, wrap) -> None:
    """``wrap(stack)`` outermost on a Starlette/FastAPI ``app``: Starlette builds its middleware stack on first use."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: wrap(build())
