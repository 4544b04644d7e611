"""`roster sandbox` as a process: the school year it serves follows `--today`."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import httpx

from tests.e2e.test_processes import ROSTER


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _banner(process: subprocess.Popen[str], last_line: str) -> list[str]:
    """The banner's lines, up to one that starts with `last_line`."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, f"the sandbox exited {process.poll()}: {lines}"
        lines.append(line.rstrip("\n"))
        if line.lstrip().startswith(last_line):
            return lines
    raise AssertionError(f"no {last_line!r} line: {lines}")


def test_the_sandbox_serves_the_school_year_around_the_day_it_is_given() -> None:
    port = _free_port()
    with subprocess.Popen(
        [*ROSTER, "sandbox", "--size", "tiny", "--port", str(port), "--today", "2024-03-01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            _check_terms(process, port)
        finally:
            process.terminate()
            process.wait(timeout=20)


def _check_terms(process: subprocess.Popen[str], port: int) -> None:
    """The banner names the school year, and the served terms are that year's."""
    banner = _banner(process, "district ")
    assert "  School year:   2023-2024 (around 2024-03-01)" in banner
    match = re.search(r"token ([0-9a-f]+)", banner[-1])
    assert match is not None, banner
    headers = {"Authorization": f"Bearer {match.group(1)}"}
    base = f"http://127.0.0.1:{port}/v3.1"
    deadline = time.monotonic() + 30
    while True:
        try:
            terms = httpx.get(f"{base}/terms", headers=headers, timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the sandbox never answered"
            time.sleep(0.1)
    assert terms.status_code == 200
    served = {row["data"]["name"]: row["data"] for row in terms.json()["data"]}
    assert set(served) == {"2023-2024 School Year", "Fall 2023", "Spring 2024"}
    year = served["2023-2024 School Year"]
    assert year["start_date"] <= "2024-03-01" <= year["end_date"]
