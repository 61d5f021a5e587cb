"""The HTTP floor the benchmark measures beside the servers: uvicorn with KServe's settings (httptools, uvloop when
installed, no access log) and an ASGI app that reads the request body and answers a fixed V2 response, no model.

    python bench/httpfloor.py --http_port PORT --model_name NAME

What a predictor's figures cannot go past on this machine with this HTTP stack: its req/s is the ceiling and its
p99 the part of the tail that no change to the model path can remove.
"""

import argparse

import uvicorn

BODY = (
    b'{"model_name":"fraud","id":"","outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[0]},'
    b'{"name":"probabilities","shape":[1,2],"datatype":"FP64","data":[0.9,0.1]}]}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to start
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--model_name", default="fraud")
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.http_port, log_config=None, access_log=False, loop="auto")


if __name__ == "__main__":
    main()
