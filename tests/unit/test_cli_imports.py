"""`roster --help` starts in a fraction of a second: the command line imports the app's
heavy modules only in the commands that use them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "pydantic",
    "asyncpg",
    "httpx",
    "fastapi",
    "rich.console",
    "app.settings",
)


def test_the_command_line_imports_nothing_heavy_to_show_its_help() -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['roster', '--help']\n"
        "try:\n"
        "    runpy.run_module('app.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('imported:', *(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Usage: roster" in done.stdout
    assert done.stdout.splitlines()[-1] == "imported:"
