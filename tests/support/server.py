"""The app served by uvicorn over real HTTP, for tests whose client needs a URL, not an app.

The server runs its own event loop in a daemon thread, so synchronous clients (generated
clients, schemathesis) can call it from the test thread while the test's loop is idle.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

STARTUP_SECONDS = 30.0


@contextmanager
def serve_in_thread(app: ASGIApp, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` (lifespan included) on a free loopback port for the block; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan="on",
            ws="none",
            access_log=False,
            # Left at its default, uvicorn would reconfigure logging for the whole test process.
            log_config=None,
            log_level="warning",
        )
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # uvicorn leaves by SystemExit when startup fails
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the app did not start: {failure!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start within {STARTUP_SECONDS:.0f} s")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
