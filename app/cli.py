"""The `roster` command line: run the API and the worker, migrate, and develop locally.

Each command imports what it needs when it runs: `roster --help`, and a command's own help,
load typer and little else (the app's modules take seconds to import).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app.sync.runs import RunMode, RunStatus, RunTrigger

if TYPE_CHECKING:
    import asyncpg
    from fastapi import FastAPI
    from rich.console import Console
    from rich.progress import TaskID
    from rich.table import Table

    from app.api.keys import ApiKeyInfo, CreatedKey, Revocation, Scope
    from app.settings import Settings
    from app.sync.full import SyncOutcome
    from app.sync.service import SyncDeps
    from app.sync.tokens import DistrictTokens

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

    # Lines are never broken at the console's width: piped to a file or a log (80 columns
    # then), a message stays one line to read and to grep.
    return Console(stderr=True, soft_wrap=True)


T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coroutine)


def port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on `port` of `host` (bound as uvicorn binds it)."""
    import socket

    try:
        with socket.create_server((host, port)):
            return False
    except OSError as error:
        import errno

        return error.errno == errno.EADDRINUSE


def _require_free_port(host: str, port: int, hint: str) -> None:
    """Stop with one plain line, before anything starts, when the port is taken."""
    if port_in_use(host, port):
        _console().print(f"port {port} is in use; {hint}", highlight=False)
        raise typer.Exit(1)


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
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: PORT, 8000).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Serve the roster API with uvicorn."""
    import uvicorn

    settings = _settings()
    if port is None:
        port = settings.port
        _require_free_port(host, port, "set PORT to another")
    else:
        _require_free_port(host, port, "choose another with --port")
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
    from app.clever.errors import CleverError
    from app.mirror.pg import create_pool
    from app.sync.service import SyncDeps
    from app.sync.tokens import DistrictTokens

    pool = await create_pool(settings)
    try:
        deps = SyncDeps(settings=settings, pool=pool, tokens=DistrictTokens(settings))
        try:
            if district_id is None:
                district_ids = await deps.tokens.district_ids()
            elif await _unknown_districts(pool, deps.tokens, [district_id]):
                # Refused before a run is recorded, as `POST /v1/sync` answers 404.
                _console().print(
                    f"[red]unknown district {district_id!r}:[/red] it is not mirrored and no"
                    " Clever token serves it (CLEVER_DISTRICT_TOKENS, CLEVER_CLIENT_ID)",
                    highlight=False,
                )
                return 2
            else:
                district_ids = [district_id]
        except CleverError as error:
            _console().print(
                f"[red]Clever could not be asked which districts it serves:[/red] {error}"
            )
            return 1
        if not district_ids:
            _console().print(
                "[red]no district: configure CLEVER_DISTRICT_TOKENS or a client id[/red]"
            )
            return 1
        exit_code = 0
        for current in district_ids:
            started = time.monotonic()
            outcome = await _sync_with_progress(deps, current, mode)
            exit_code = max(exit_code, await _report(pool, current, outcome, started))
        return exit_code
    finally:
        await pool.close()


async def _unknown_districts(
    pool: asyncpg.Pool | asyncpg.Connection, tokens: DistrictTokens, district_ids: list[str]
) -> list[str]:
    """Those of `district_ids` neither mirrored nor served by a Clever token: what
    `POST /v1/sync` answers 404 for. Clever is asked only about ids not mirrored."""
    mirrored = {
        row["id"]
        for row in await pool.fetch(
            "SELECT id FROM districts WHERE id = ANY($1::text[])", district_ids
        )
    }
    unmirrored = [district_id for district_id in district_ids if district_id not in mirrored]
    if not unmirrored:
        return []
    served = set(await tokens.district_ids())
    return [district_id for district_id in unmirrored if district_id not in served]


async def _sync_with_progress(deps: SyncDeps, district_id: str, mode: RunMode) -> SyncOutcome:
    """One district's sync, with a line per collection: records read, out of about as many
    as the district's previous full run read."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from app.sync.queue import claim_cli_run
    from app.sync.runs import previous_records
    from app.sync.service import follow_run, sync_district

    async with deps.pool.acquire() as connection:
        estimates = await previous_records(connection, district_id)
    tasks: dict[str, TaskID] = {}
    read: dict[str, int] = {}
    with Progress(
        SpinnerColumn(finished_text=" "),
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[amount]}"),
        TimeElapsedColumn(),
        console=_console(),
    ) as progress:

        def finish(collection: str) -> None:
            records = read[collection]
            progress.update(
                tasks[collection], total=max(records, 1), completed=max(records, 1),
                amount=progress_amount(records, None),
            )  # fmt: skip

        def on_progress(collection: str, pages: int, records: int) -> None:
            estimate = estimates.get(collection)
            if collection not in tasks:
                for earlier in tasks:
                    finish(earlier)  # collections are read one after the other
                tasks[collection] = progress.add_task(
                    f"{district_id} {collection:<9}", total=estimate, amount=""
                )
            read[collection] = records
            progress.update(
                tasks[collection],
                completed=records,
                total=max(estimate, records) if estimate else None,
                amount=progress_amount(records, estimate),
            )

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
        for collection in tasks:
            finish(collection)
    if outcome.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        # A worker took up the same queued run first.
        _console().print(f"district {district_id}: a worker runs run {claim.run_id}; following it")
        return await follow_run(deps.pool, claim.run_id)
    return outcome


def progress_amount(records: int, estimate: int | None) -> str:
    """A collection's progress in words: `3,200 / ~5,000` while read with an estimate from
    the previous run, `3,200` without one or once read."""
    if estimate is None:
        return f"{records:,}"
    return f"{records:,} / ~{estimate:,}"


async def _report(
    pool: asyncpg.Pool, district_id: str, outcome: SyncOutcome, started: float
) -> int:
    """Print how a run ended, with a table of what it changed; the exit code for it (held
    runs need a decision: 3)."""
    from app.sync import runs

    label = f"district {district_id} run {outcome.run_id}"
    async with pool.acquire() as connection:
        run = await runs.get_run(connection, outcome.run_id)
        warnings = await _open_warnings_by_entity(connection, district_id)
    if run is not None and run["started_at"] is not None and run["finished_at"] is not None:
        duration = (run["finished_at"] - run["started_at"]).total_seconds()
    else:
        duration = time.monotonic() - started
    if outcome.counts and outcome.status in (RunStatus.SUCCEEDED, RunStatus.HELD):
        summary = sync_summary(outcome.counts, warnings, duration)
        # An incremental run that applied no events changed no table: its caption says so.
        _console().print(summary if summary.row_count else summary.caption or "")
    if outcome.status is RunStatus.SUCCEEDED:
        _console().print(
            f"[green]{label} succeeded[/green] in {duration:.1f} s,"
            f" {outcome.warnings} data warnings"
        )
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


async def _open_warnings_by_entity(
    connection: asyncpg.Connection, district_id: str
) -> dict[str, int]:
    """The district's open data warnings per entity (a full run finds each of them)."""
    rows = await connection.fetch(
        "SELECT entity, count(*) AS open FROM data_warnings"
        " WHERE district_id = $1 AND resolved_at IS NULL GROUP BY entity",
        district_id,
    )
    return {row["entity"]: row["open"] for row in rows}


SUMMARY_COLUMNS = ("created", "updated", "deactivated", "unchanged")


def sync_summary(
    counts: dict[str, dict[str, int]], warnings: dict[str, int], duration: float
) -> Table:
    """A run's counts as a table: a row per entity and link table with the district's open
    data warnings of its kind, the run's data warnings and events (of an incremental run)
    below it."""
    from rich.table import Table

    from app.mirror.staging import ENTITY_KINDS, LINK_KINDS

    # The merge's order, whatever order the counts come in (jsonb keeps keys by length).
    order = [*ENTITY_KINDS, *LINK_KINDS]
    table = Table(
        *("", *SUMMARY_COLUMNS, "open warnings"),
        title=f"sync summary ({duration:.1f} s)",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    for column in table.columns[1:]:
        column.justify = "right"
    footer = []
    ranked = sorted(counts, key=lambda name: order.index(name) if name in order else len(order))
    for name in ranked:
        values = counts[name]
        if name == "data_warnings":
            footer.append("data warnings: " + _named_counts(values))
        elif name == "events":
            footer.append("events: " + (_named_counts(values) or "none new"))
        else:
            cells = [f"{values.get(column, 0):,}" for column in SUMMARY_COLUMNS]
            table.add_row(name, *cells, f"{warnings.get(name, 0):,}")
    if footer:
        table.caption = "; ".join(footer)
        table.caption_justify = "left"
    return table


def _named_counts(values: dict[str, int]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in values.items())


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
            " (repeat, or separate with commas, for several)."
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

    valid = [s.value for s in Scope]
    values = [value.strip() for option in scope for value in option.split(",") if value.strip()]
    unknown = [value for value in values if value not in valid]
    if unknown or not values:
        problem = f"unknown scope {', '.join(map(repr, unknown))}" if unknown else "none given"
        _console().print(
            f"[red]--scope: {problem}[/red]; the scopes are {', '.join(valid)}", highlight=False
        )
        raise typer.Exit(2)
    scopes = [Scope(value) for value in values]
    lifetime = _duration(expires_in, "--expires-in")
    created = _run(_create_key(_settings(), name, scopes, district or None, lifetime))
    if created is None:
        raise typer.Exit(2)
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
) -> CreatedKey | None:
    """The key, or None (the reason printed) when it names a district that is unknown."""
    import asyncpg

    from app.api.keys import create_key
    from app.clever.errors import CleverError
    from app.sync.tokens import DistrictTokens

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        if districts:
            try:
                unknown = await _unknown_districts(connection, DistrictTokens(settings), districts)
            except CleverError as error:
                _console().print(
                    f"[red]Clever could not be asked which districts it serves:[/red] {error}"
                )
                return None
            if unknown:
                _console().print(
                    f"[red]--district: unknown district {', '.join(map(repr, unknown))}[/red]:"
                    " neither mirrored nor served by a Clever token (see `GET /v1/districts`)",
                    highlight=False,
                )
                return None
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
    key: Annotated[
        str, typer.Argument(help="The key's id, the key itself, or the prefix `keys list` shows.")
    ],
) -> None:
    """Revoke an API key. API processes stop accepting it within API_KEY_CACHE_SECONDS.
    A key revoked already is left as it is, and the command says so (exit 0: the key is
    revoked either way)."""
    revocation = _run(_revoke_key(_settings(), key))
    if revocation is None:
        shown = key if len(key) <= 40 else key[:10] + "..."  # never echo a whole secret
        _console().print(f"[red]no key with id, secret or unique prefix {shown!r}[/red]")
        raise typer.Exit(1)
    revoked = revocation.key
    if revocation.already:
        assert revoked.revoked_at is not None
        _console().print(
            f"key {revoked.id} ({revoked.name}) was already revoked,"
            f" at {revoked.revoked_at.isoformat(timespec='seconds')}"
        )
        return
    _console().print(f"revoked key {revoked.id} ({revoked.name})")


async def _revoke_key(settings: Settings, key: str) -> Revocation | None:
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
    today: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Generate the school year around this day (YYYY-MM-DD) instead of today.",
        ),
    ] = None,
) -> None:
    """Serve a fake Clever v3 API with generated districts; prints the URL and tokens."""
    _require_free_port(host, port, "choose another with --port")
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
        today=today.date() if today else None,
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
    port: Annotated[int | None, typer.Option(help="Port of the API (default: PORT, 8000).")] = None,
    sandbox_size: Annotated[
        SandboxSize, typer.Option(help="Size of the sandbox's district.")
    ] = SandboxSize.S,
) -> None:
    """Run everything locally until Ctrl-C: migrate, the API, a worker, and without Clever
    credentials the Clever sandbox with a first sync of its district. Writes the settings
    it runs with to DEV_DATA_DIR/env for `roster` commands in other shells."""
    # The port first: a busy one stops the demo before it starts anything.
    if port is None:
        port = _settings(need_services=False).port
        _require_free_port(host, port, "set PORT to another")
    else:
        _require_free_port(host, port, "choose another with --port")
    from app.demo import Demo

    raise typer.Exit(Demo(_settings(), _console(), host, port, sandbox_size.value).run())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
