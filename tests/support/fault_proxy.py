"""A TCP proxy that injects network faults between a client and a real server.

It runs on the test's event loop and forwards bytes both ways. Faults, settable at any
time: `latency` (seconds added before each chunk the server sends back), `cut()` (reset
every open connection, as a server restart or a network outage does), and `refuse(seconds)`
(new connections are closed at once until then, as while a server is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._refusing_until = 0.0
        self.latency = 0.0
        self.connections = 0

    async def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Reset every open connection."""
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    def refuse(self, seconds: float) -> None:
        self._refusing_until = time.monotonic() + seconds

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if time.monotonic() < self._refusing_until:
            _reset(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _reset(writer)
            return
        self._writers |= {writer, upstream_writer}
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, delayed=False),
                self._pipe(upstream_reader, writer, delayed=True),
            )
        finally:
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                with contextlib.suppress(Exception):
                    end.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delayed: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if delayed and self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: the peer sees the connection fail, not end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    with contextlib.suppress(Exception):
        writer.close()
