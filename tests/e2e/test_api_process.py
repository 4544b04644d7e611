"""`roster api` as deployed: a real uvicorn process facing hostile clients over TCP."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.e2e.test_processes import ROSTER, _environment

MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def api_process(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    with (tmp_path / "api.log").open("wb") as log:
        process = subprocess.Popen(
            [*ROSTER, "api", "--port", str(port)],
            env=_environment(settings),
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, (tmp_path / "api.log").read_text()
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
            yield process, url
        finally:
            process.terminate()
            process.wait(timeout=10)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _post_huge(url: str, *, size: int, chunked: bool) -> bytes:
    """POST `size` bytes to /v1/sync without a key; returns what the server answered."""
    host, port = url.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    chunk = b"x" * (64 * 1024)
    answer = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/sync HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n\r\n".encode()
        )
        sent = 0
        try:
            while sent < size:
                piece = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
                sock.sendall(piece)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading, as it should
        try:
            while data := sock.recv(65536):
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_huge_bodies_are_refused_without_growing_the_process(
    api_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = api_process
    # Warm up the code paths once, so what is measured next is what bodies cost.
    _post_huge(url, size=MB, chunked=True)
    before = _rss_kb(process.pid)
    for chunked in (False, True):
        answer = _post_huge(url, size=50 * MB, chunked=chunked)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"application/problem+json" in answer
    growth_kb = _rss_kb(process.pid) - before
    assert growth_kb < 5 * 1024, f"RSS grew by {growth_kb} kB"


def test_the_server_does_not_name_its_software(
    api_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, url = api_process
    response = httpx.get(f"{url}/healthz")
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def _get_on(sock: socket.socket, host: str) -> bytes:
    """One keep-alive GET /healthz on an open connection, read to the end of its body (so
    the next request's answer starts clean); the answer's status line."""
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        piece = sock.recv(4096)
        if not piece:
            break
        answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    remaining = int(length.group(1)) - len(body) if length else 0
    while remaining > 0:
        piece = sock.recv(remaining)
        if not piece:
            break
        remaining -= len(piece)
    return head.split(b"\r\n", 1)[0]


def test_an_idle_connection_outlives_a_client_pool_s_idle_timeout(
    api_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    """HTTP clients drop pooled connections idle for 5 s (httpx's default); the server must
    not close them first, or a request sent as it closes one is reset."""
    _, url = api_process
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        assert _get_on(sock, host) == b"HTTP/1.1 200 OK"
        time.sleep(6)
        assert _get_on(sock, host) == b"HTTP/1.1 200 OK"
