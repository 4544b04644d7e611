"""The framework's own ceiling: `python -m bench.api.minimal --host H --port P`.

A FastAPI app with one route, `GET /v1/minimal/{item_id}`, answering the bytes of the file
named by `BENCH_MINIMAL_BODY` (a real answer of the endpoint measured, so its size and
shape are the same), on uvicorn run the way `roster api` runs it. No key, no database:
what is left of a request when the work is taken away.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from starlette.responses import Response

app = FastAPI()
BODY = (
    Path(os.environ["BENCH_MINIMAL_BODY"]).read_bytes()
    if "BENCH_MINIMAL_BODY" in os.environ
    else b"{}"
)


@app.get("/v1/minimal/{item_id}")
async def item(item_id: str) -> Response:
    return Response(BODY, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api.minimal")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=True,
        access_log=False,
        timeout_keep_alive=75,
        server_header=False,
    )


if __name__ == "__main__":
    main()
