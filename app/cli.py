"""The `roster` command line: run the API and the worker, migrate, and develop locally.

Each command imports what it needs when it runs: `roster --help`, and a command's own help,
load typer and little else (the app's modules take seconds to import).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Coroutine
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app.sync.runs import RunMode, RunStatus, RunTrigger

if TYPE_CHECKING:
    from fastapi import FastAPI
    from rich.console import Console
    from rich.progress import TaskID

    from app.api.keys import ApiKeyInfo, CreatedKey, Scope
    from app.settings import Settings
    from app.sync.full import SyncOutcome
    from app.sync.service import SyncDeps

cli = typer.Typer(
    help="Roster mirror: Clever roster data in Postgres, served as a school-agnostic API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help formatting alone takes longer to import than the rest.
    rich_markup_mode=None,
)
dev_services_cli = typer.Typer(
    help="Embedded Postgres and Redis for development.", rich_markup_mode=None
)
cli.add_typer(dev_services_cli, name="dev-services")
keys_cli = typer.Typer(
    help="API keys of the roster API's consumers.", no_args_is_help=True, rich_markup_mode=None
)
cli.add_typer(keys_cli, name="keys")
districts_cli = typer.Typer(
    help="Settings of one mirrored district.", no_args_is_help=True, rich_markup_mode=None
)
cli.add_typer(districts_cli, name="districts")


@functools.cache
def _console() -> Console:
    """rich's console on stderr, made at first use: importing rich costs a third of what
    `roster --help` may take."""
    from rich.console import Console

    return Console(stderr=True)


T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coroutine)


def _settings(*, need_services: bool = True) -> Settings:
    """Load settings, starting embedded servers for DATABASE_URL / REDIS_URL when unset."""
    from app.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        if need_services and not (settings.database_url and settings.redis_url):
            from app.embedded import ensure_environment

            ensure_environment(Path(settings.dev_data_dir))
            settings = load_settings()
    except SettingsError as exc:
        _console().print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ImportError:
        _console().print(
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
    _console().print("database migrated to head")


@cli.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Serve the roster API with uvicorn."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "app.cli:serving_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        access_log=False,
        timeout_keep_alive=settings.api_keep_alive_seconds,
        # Naming the server software helps only those probing for its known flaws.
        server_header=False,
    )


def serving_app() -> FastAPI:
    """The app as each `roster api` worker process builds it.

    Everything built so far (modules, routes, schemas: about 100k objects) lives as long as
    the process, so it is frozen out of the garbage collector's full collections, which
    otherwise scan it all and stall every request in flight for tens of milliseconds.
    """
    import gc

    from app.main import create_app

    app = create_app()
    gc.freeze()
    return app


@cli.command()
def worker(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 0 if a worker reported itself alive recently.")
    ] = False,
) -> None:
    """Run the arq worker that performs syncs. When it loses Redis (a restart, a failover)
    it starts again, as a fresh process with the same pid, once Redis answers."""
    from arq.worker import check_health, run_worker
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from workers.main import worker_settings

    settings = worker_settings(_settings())
    if check:
        raise typer.Exit(check_health(settings))
    try:
        run_worker(settings)
    except (RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
        _restart_after_redis_loss(error)


def _restart_after_redis_loss(error: Exception) -> None:
    """Replace this process with a new worker: the job that was running has ended (its run
    is recorded in Postgres), and a fresh start is the one state arq knows to be clean."""
    import logging
    import os
    import sys
    import time

    logging.getLogger("workers").warning(
        "the worker lost Redis; starting again", extra={"error": str(error)[:200]}
    )
    time.sleep(REDIS_RESTART_SECONDS)
    os.execv(sys.executable, [sys.executable, "-m", "app.cli", "worker"])


# How long a worker that lost Redis waits before it starts again (arq then retries the
# connection itself for a while).
REDIS_RESTART_SECONDS = 2.0


@cli.command()
def sync(
    target: Annotated[
        list[str] | None,
        typer.Argument(
            help="DISTRICT_ID to sync, or `approve RUN_ID` / `reject RUN_ID` for a held run.",
            show_default=False,
        ),
    ] = None,
    all_districts: Annotated[
        bool, typer.Option("--all", help="Sync every district a token serves.")
    ] = False,
    mode: Annotated[RunMode, typer.Option(help="full or incremental.")] = RunMode.FULL,
) -> None:
    """Sync districts in this process (no worker or Redis needed), with progress bars."""
    words = target or []
    if words[:1] in (["approve"], ["reject"]) and len(words) == 2:
        raise typer.Exit(_run(_decide(_settings(), words[1], approve=words[0] == "approve")))
    if all_districts == bool(words) or len(words) > 1:
        _console().print("give one DISTRICT_ID, or --all, or `approve|reject RUN_ID`")
        raise typer.Exit(2)
    raise typer.Exit(_run(_sync(_settings(), words[0] if words else None, mode)))


async def _sync(settings: Settings, district_id: str | None, mode: RunMode) -> int:
    from app.mirror.pg import create_pool
    from app.sync.service import SyncDeps
    from app.sync.tokens import DistrictTokens

    pool = await create_pool(settings)
    try:
        deps = SyncDeps(settings=settings, pool=pool, tokens=DistrictTokens(settings))
        district_ids = [district_id] if district_id else await deps.tokens.district_ids()
        if not district_ids:
            _console().print(
                "[red]no district: configure CLEVER_DISTRICT_TOKENS or a client id[/red]"
            )
            return 1
        exit_code = 0
        for current in district_ids:
            outcome = await _sync_with_progress(deps, current, mode)
            exit_code = max(exit_code, _report(current, outcome))
        return exit_code
    finally:
        await pool.close()


async def _sync_with_progress(deps: SyncDeps, district_id: str, mode: RunMode) -> SyncOutcome:
    """One district's sync, with a progress line per collection."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from app.sync.queue import claim_cli_run
    from app.sync.service import follow_run, sync_district

    tasks: dict[str, TaskID] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[pages]} pages, {task.completed:,.0f} records"),
        TimeElapsedColumn(),
        console=_console(),
    ) as progress:

        def on_progress(collection: str, pages: int, records: int) -> None:
            if collection not in tasks:
                tasks[collection] = progress.add_task(
                    f"{district_id} {collection}", total=None, pages=0
                )
            progress.update(tasks[collection], completed=records, pages=pages)

        claim = await claim_cli_run(deps.pool, district_id, mode)
        if claim.running_elsewhere:
            _console().print(
                f"district {district_id}: run {claim.run_id} is running in another process;"
                " following it"
            )
            return await follow_run(deps.pool, claim.run_id)
        outcome = await sync_district(
            deps,
            district_id,
            mode=claim.mode,
            trigger=RunTrigger.CLI,
            run_id=claim.run_id,
            on_progress=on_progress,
        )
    if outcome.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        # A worker took up the same queued run first.
        _console().print(f"district {district_id}: a worker runs run {claim.run_id}; following it")
        return await follow_run(deps.pool, claim.run_id)
    return outcome


def _report(district_id: str, outcome: SyncOutcome) -> int:
    """Print how a run ended; the exit code for it (held runs need a decision: 3)."""
    label = f"district {district_id} run {outcome.run_id}"
    if outcome.status is RunStatus.SUCCEEDED:
        _console().print(f"[green]{label} succeeded[/green], {outcome.warnings} data warnings")
        for entity, counts in outcome.counts.items():
            _console().print(f"  {entity}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    if outcome.status is RunStatus.COALESCED:
        _console().print(f"[yellow]{label}: another sync of this district is running[/yellow]")
        return 0
    if outcome.status is RunStatus.HELD:
        _console().print(f"[yellow]{label} held:[/yellow] {outcome.held_reason}")
        _console().print(f"  apply it with `roster sync approve {outcome.run_id}`")
        return 3
    _console().print(f"[red]{label} failed:[/red] {outcome.error}")
    return 1


async def _decide(settings: Settings, run_id: str, *, approve: bool) -> int:
    import uuid

    from app.mirror.pg import create_pool
    from app.sync.full import SyncError, decide_held_run
    from app.sync.service import SyncDeps
    from app.sync.tokens import DistrictTokens

    try:
        parsed = uuid.UUID(run_id)
    except ValueError:
        _console().print(f"[red]not a run id: {run_id}[/red]")
        return 2
    pool = await create_pool(settings)
    try:
        deps = SyncDeps(settings=settings, pool=pool, tokens=DistrictTokens(settings))
        outcome = await decide_held_run(
            pool, parsed, approve=approve, decided_by="cli", options=deps.options
        )
    except SyncError as exc:
        _console().print(f"[red]{exc}[/red]")
        return 1
    finally:
        await pool.close()
    _console().print(f"run {run_id} {outcome.status.value}")
    return 0


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
    from app.settings import load_settings

    document = json.dumps(create_app(load_settings()).openapi(), indent=2, ensure_ascii=False)
    document += "\n"
    if check:
        current = output.read_text() if output.exists() else ""
        if current != document:
            _console().print(
                f"[red]{output} is out of date:[/red] run `make openapi` and commit it"
            )
            raise typer.Exit(1)
        _console().print(f"{output} matches the app")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    _console().print(f"wrote {output}")


def _duration(text: str | None, option: str) -> timedelta | None:
    from app.api.keys import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        _console().print(f"[red]{option}: {error}[/red]")
        raise typer.Exit(2) from None


def _expiry(info: ApiKeyInfo) -> str:
    return f"expires {info.expires_at.isoformat(timespec='seconds')}" if info.expires_at else ""


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    scope: Annotated[
        list[str],
        typer.Option(
            help="roster:read, roster:write, roster:sensitive, sync:write, console or admin"
            " (repeat for several)."
        ),
    ],
    district: Annotated[
        list[str] | None,
        typer.Option(help="Limit the key to this district (repeat; default: every district)."),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(
            help="Let the key expire after this long: 90d, 12h, 30m, 2w (default: never)."
        ),
    ] = None,
) -> None:
    """Create an API key and print it. It is shown only this once: only its digest is kept."""
    from app.api.keys import Scope

    try:
        scopes = [Scope(value) for value in scope]
    except ValueError:
        _console().print(f"[red]scopes are: {', '.join(s.value for s in Scope)}[/red]")
        raise typer.Exit(2) from None
    lifetime = _duration(expires_in, "--expires-in")
    created = _run(_create_key(_settings(), name, scopes, district or None, lifetime))
    _console().print(
        f"created key {created.info.id} ({created.info.name}) with "
        f"{', '.join(created.info.scopes)} for "
        + (", ".join(created.info.district_ids) if created.info.district_ids else "every district")
        + (f"; {_expiry(created.info)}" if created.info.expires_at else "")
    )
    _console().print("Store it now; it cannot be shown again:")
    print(created.secret)


async def _create_key(
    settings: Settings,
    name: str,
    scopes: list[Scope],
    districts: list[str] | None,
    expires_in: timedelta | None,
) -> CreatedKey:
    import asyncpg

    from app.api.keys import create_key

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        return await create_key(
            connection, name=name, scopes=scopes, district_ids=districts, expires_in=expires_in
        )
    finally:
        await connection.close()


@keys_cli.command("rotate")
def keys_rotate(
    key: Annotated[str, typer.Argument(help="The key's id, or the prefix `keys list` shows.")],
    grace: Annotated[
        str, typer.Option(help="How long the old key keeps working: 7d, 12h, 30m, 2w.")
    ] = "7d",
    expires_in: Annotated[
        str | None,
        typer.Option(help="The new key's lifetime (default: the old key's, or never)."),
    ] = None,
) -> None:
    """Issue a successor of a key (same name, scopes and districts) and print it; the old
    key expires after the grace period, so its clients can move over without an outage."""
    from app.api.keys import RotationError

    grace_period = _duration(grace, "--grace")
    assert grace_period is not None
    lifetime = _duration(expires_in, "--expires-in")
    try:
        old, successor = _run(_rotate_key(_settings(), key, grace_period, lifetime))
    except RotationError as error:
        _console().print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    _console().print(
        f"rotated key {old.id} ({old.name}): it {_expiry(old)};"
        f" its successor is {successor.info.id}"
        + (f" and {_expiry(successor.info)}" if successor.info.expires_at else "")
    )
    _console().print("Store it now; it cannot be shown again:")
    print(successor.secret)


async def _rotate_key(
    settings: Settings, key: str, grace: timedelta, expires_in: timedelta | None
) -> tuple[ApiKeyInfo, CreatedKey]:
    import asyncpg

    from app.api.keys import rotate_key

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        return await rotate_key(connection, key, grace=grace, expires_in=expires_in)
    finally:
        await connection.close()


@keys_cli.command("list")
def keys_list() -> None:
    """List API keys (never their secrets), one tab-separated line each."""
    print("id\tname\tprefix\tscopes\tdistricts\tcreated\tlast_used\trevoked\texpires\treplaced_by")
    for key in _run(_list_keys(_settings())):
        fields = [
            str(key.id),
            key.name,
            key.prefix,
            ",".join(key.scopes),
            ",".join(key.district_ids) if key.district_ids is not None else "all",
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "-",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "-",
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "-",
            str(key.replaced_by) if key.replaced_by else "-",
        ]
        print("\t".join(fields))


async def _list_keys(settings: Settings) -> list[ApiKeyInfo]:
    import asyncpg

    from app.api.keys import list_keys

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        return await list_keys(connection)
    finally:
        await connection.close()


@keys_cli.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id, or the prefix `keys list` shows.")],
) -> None:
    """Revoke an API key. API processes stop accepting it within API_KEY_CACHE_SECONDS."""
    revoked = _run(_revoke_key(_settings(), key))
    if revoked is None:
        _console().print(f"[red]no key with id or unique prefix {key!r}[/red]")
        raise typer.Exit(1)
    _console().print(f"revoked key {revoked.id} ({revoked.name})")


async def _revoke_key(settings: Settings, key: str) -> ApiKeyInfo | None:
    import asyncpg

    from app.api.keys import revoke_key

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        return await revoke_key(connection, key)
    finally:
        await connection.close()


class SandboxSize(StrEnum):
    TINY = "tiny"
    S = "S"
    D50K = "50k"
    M = "M"
    L = "L"
    XL = "XL"


class SensitiveAction(StrEnum):
    ENABLE = "enable"
    DISABLE = "disable"


@districts_cli.command("sensitive")
def districts_sensitive(
    action: Annotated[SensitiveAction, typer.Argument(help="enable or disable")],
    district_id: Annotated[str, typer.Argument(metavar="ID", help="The district's Clever id.")],
) -> None:
    """Keep a district's sensitive student fields (from its next sync on), or stop keeping
    them: disabling erases every stored value at once, raw records included."""
    enabled = action is SensitiveAction.ENABLE
    if not _run(_set_sensitive(_settings(), district_id, enabled)):
        _console().print(f"[red]no district {district_id!r} in the mirror[/red]")
        raise typer.Exit(1)
    if enabled:
        _console().print(f"sensitive fields enabled for {district_id}: the next sync stores them")
    else:
        _console().print(f"sensitive fields disabled for {district_id}: stored values erased")


async def _set_sensitive(settings: Settings, district_id: str, enabled: bool) -> bool:
    import asyncpg

    from app.local import sensitive
    from app.mirror.pg import init_connection

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        await init_connection(connection)
        return await sensitive.set_enabled(connection, district_id, enabled)
    finally:
        await connection.close()


@cli.command()
def sandbox(
    size: Annotated[SandboxSize, typer.Option(help="District size.")] = SandboxSize.S,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    seed: Annotated[int, typer.Option(help="Generator seed (district k uses seed + k).")] = 1,
    districts: Annotated[int, typer.Option(help="How many districts to serve.")] = 1,
    latency_ms: Annotated[float, typer.Option(help="Added latency per request.")] = 0.0,
    rate_limit_every: Annotated[int, typer.Option(help="Answer 429 every N requests.")] = 0,
    error_every: Annotated[int, typer.Option(help="Answer 5xx every N requests.")] = 0,
    truncate_every: Annotated[int, typer.Option(help="Truncate every Nth body.")] = 0,
    drop_every: Annotated[int, typer.Option(help="Drop every Nth connection.")] = 0,
    no_events: Annotated[
        bool, typer.Option("--no-events", help="Answer /events with 403.")
    ] = False,
    messy: Annotated[
        bool,
        typer.Option(
            "--messy",
            help="Also serve values Clever's schema rejects (dob 'unknown', relationships"
            " outside its enums), as real districts send.",
        ),
    ] = False,
) -> None:
    """Serve a fake Clever v3 API with generated districts; prints the URL and tokens."""
    from sandbox.faults import FaultConfig
    from sandbox.server import serve

    serve(
        size=size.value,
        host=host,
        port=port,
        seed=seed,
        districts=districts,
        events_enabled=not no_events,
        messy=messy,
        faults=FaultConfig(
            latency_ms=latency_ms,
            rate_limit_every=rate_limit_every,
            error_every=error_every,
            truncate_every=truncate_every,
            drop_every=drop_every,
        ),
    )


@dev_services_cli.command("up")
def dev_services_up() -> None:
    """Start the embedded Postgres and Redis and print their URLs."""
    from app.embedded import start_all
    from app.settings import load_settings

    settings = load_settings()
    urls = start_all(Path(settings.dev_data_dir))
    print(f"export DATABASE_URL='{urls.database_url}'")
    print(f"export REDIS_URL='{urls.redis_url}'")


@dev_services_cli.command("down")
def dev_services_down() -> None:
    """Stop the embedded Postgres and Redis."""
    from app.embedded import stop_postgres, stop_redis
    from app.settings import load_settings

    data_dir = Path(load_settings().dev_data_dir)
    _console().print(f"postgres: {'stopped' if stop_postgres(data_dir) else 'was not running'}")
    _console().print(f"redis: {'stopped' if stop_redis(data_dir) else 'was not running'}")


@cli.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
) -> None:
    """Run everything locally until Ctrl-C: migrate, the API, a worker, and without Clever
    credentials the Clever sandbox with a first sync of its district."""
    from app.demo import Demo

    raise typer.Exit(Demo(_settings(), _console(), host, port).run())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
