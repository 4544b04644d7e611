"""The `roster` command line: run the API and the worker, migrate, and develop locally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from app.settings import Settings, SettingsError, load_settings

cli = typer.Typer(
    help="Roster mirror: Clever roster data in Postgres, served as a school-agnostic API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
dev_services_cli = typer.Typer(help="Embedded Postgres and Redis for development.")
cli.add_typer(dev_services_cli, name="dev-services")

console = Console(stderr=True)


def _settings(*, need_services: bool = True) -> Settings:
    """Load settings, starting embedded servers for DATABASE_URL / REDIS_URL when unset."""
    try:
        settings = load_settings()
        if need_services and not (settings.database_url and settings.redis_url):
            from app.embedded import ensure_environment

            ensure_environment(Path(settings.dev_data_dir))
            settings = load_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ImportError:
        console.print(
            "[red]configuration error:[/red] DATABASE_URL and REDIS_URL must be set "
            "(the embedded development servers are not installed)"
        )
        raise typer.Exit(2) from None
    from app.observability.logs import configure_logging

    configure_logging(settings.log_level.value)
    return settings


@cli.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head)."""
    from app.migrations import upgrade

    settings = _settings()
    upgrade(settings.require_database_url())
    console.print("database migrated to head")


@cli.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Serve the roster API with uvicorn."""
    import uvicorn

    _settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        access_log=False,
    )


@cli.command()
def worker(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 0 if a worker reported itself alive recently.")
    ] = False,
) -> None:
    """Run the arq worker that performs syncs."""
    from arq.worker import check_health, run_worker

    from workers.main import worker_settings

    settings = worker_settings(_settings())
    if check:
        raise typer.Exit(check_health(settings))
    run_worker(settings)


@cli.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where the document lives.")] = Path(
        "openapi/openapi.json"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the file differs from the app.")
    ] = False,
) -> None:
    """Write the app's OpenAPI document (or check that the committed one is current)."""
    from app.main import create_app

    document = json.dumps(create_app(load_settings()).openapi(), indent=2, ensure_ascii=False)
    document += "\n"
    if check:
        current = output.read_text() if output.exists() else ""
        if current != document:
            console.print(f"[red]{output} is out of date:[/red] run `make openapi` and commit it")
            raise typer.Exit(1)
        console.print(f"{output} matches the app")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    console.print(f"wrote {output}")


@dev_services_cli.command("up")
def dev_services_up() -> None:
    """Start the embedded Postgres and Redis and print their URLs."""
    from app.embedded import start_all

    settings = load_settings()
    urls = start_all(Path(settings.dev_data_dir))
    print(f"export DATABASE_URL='{urls.database_url}'")
    print(f"export REDIS_URL='{urls.redis_url}'")


@dev_services_cli.command("down")
def dev_services_down() -> None:
    """Stop the embedded Postgres and Redis."""
    from app.embedded import stop_postgres, stop_redis

    data_dir = Path(load_settings().dev_data_dir)
    console.print(f"postgres: {'stopped' if stop_postgres(data_dir) else 'was not running'}")
    console.print(f"redis: {'stopped' if stop_redis(data_dir) else 'was not running'}")


@cli.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
) -> None:
    """Run everything locally: migrate, then the API and a worker until Ctrl-C."""
    from app.migrations import upgrade

    settings = _settings()
    upgrade(settings.require_database_url())
    processes = {
        "api": _spawn("api", "--host", host, "--port", str(port)),
        "worker": _spawn("worker"),
    }
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    base_url = f"http://{host}:{port}"
    try:
        if _wait_ready(base_url, processes, lambda: stopping):
            console.print(f"[green]API ready[/green] at {base_url}  (docs: {base_url}/docs)")
            console.print(f"  health {base_url}/healthz  readiness {base_url}/readyz")
            console.print(f"  metrics {base_url}/metrics")
            console.print("Press Ctrl-C to stop.")
        while not stopping and all(p.poll() is None for p in processes.values()):
            time.sleep(0.2)
    finally:
        failed = [name for name, p in processes.items() if p.poll() not in (None, 0)]
        _terminate(processes.values())
    if failed and not stopping:
        console.print(f"[red]stopped: {', '.join(failed)} exited[/red]")
        raise typer.Exit(1)
    console.print("stopped")


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    # Children ignore Ctrl-C from the terminal; the demo stops them itself, in order.
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=os.environ.copy(),
        start_new_session=True,
    )


def _wait_ready(
    base_url: str,
    processes: dict[str, subprocess.Popen[bytes]],
    stopping: Callable[[], bool],
    timeout: float = 60.0,
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopping():
            return False
        if any(p.poll() is not None for p in processes.values()):
            return False
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _terminate(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    children = list(processes)
    for process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in children:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
