"""Outbound webhooks: the change feed POSTed to subscribers. The only writer of `webhooks`
and `webhook_deliveries`.

`dispatch` runs in the worker (every few seconds, and after each sync run), never in a
sync: a slow or failing subscriber cannot slow or fail a sync.

1. Planning: for each active webhook, the feed after its cursor (with its filters) is cut
   into deliveries of up to `max_changes` changes; the cursor moves in the same short
   transaction. A delivery's body holds its changes, or, when they would exceed
   `max_body_bytes`, only the feed cursors to read them from (`changes: null`).
2. Sending: each webhook's oldest pending delivery, once due, is POSTed (signed like our
   inbound webhook, with `X-Roster-Delivery`), no redirects followed, within `timeout`.
   A 2xx answer delivers it; anything else is retried with capped exponential backoff,
   and after `pause_after` failures in a row the webhook is paused until resumed. A
   delivery is claimed (leased) before it is sent, so two workers never send it at once;
   a worker that dies mid-send leaves it to be sent again: receivers dedupe by delivery id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson

from app.mirror.queries import changes
from app.settings import Settings
from app.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

DELIVERY_HEADER = "X-Roster-Delivery"


@dataclass(frozen=True)
class WebhookSettings:
    timeout_seconds: float = 10.0
    max_changes: int = 500
    max_body_bytes: int = 1_000_000
    pause_after: int = 10
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 3600.0
    max_attempts: int = 20


_COLUMNS = (
    "id, url, entities, district_ids, created_at, created_by, paused_at, failures,"
    " cursor_xid, cursor_seq"
)


def webhook_settings(settings: Settings) -> WebhookSettings:
    return WebhookSettings(
        timeout_seconds=settings.webhook_timeout_seconds,
        max_changes=settings.webhook_max_changes,
        max_body_bytes=settings.webhook_max_body_bytes,
        pause_after=settings.webhook_pause_after_failures,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        retry_max_seconds=settings.webhook_retry_max_seconds,
    )


async def create(
    connection: asyncpg.Connection,
    *,
    url: str,
    secret: str,
    entities: list[str] | None,
    district_ids: list[str] | None,
    actor: str,
    start: changes.Position | None = None,
) -> asyncpg.Record:
    """A new webhook, fed the changes after `start` (None: those made from now on)."""
    start = start or await changes.latest(connection)
    row: asyncpg.Record = await connection.fetchrow(
        f"""
        INSERT INTO webhooks (id, url, secret, entities, district_ids, created_by,
                              cursor_xid, cursor_seq)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}
        """,
        uuid.uuid4(),
        url,
        secret,
        entities,
        district_ids,
        actor,
        start.xid,
        start.seq,
    )
    return row


async def listed(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {_COLUMNS} FROM webhooks WHERE deleted_at IS NULL ORDER BY created_at, id"
    )
    return rows


async def found(connection: asyncpg.Connection, webhook_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1 AND deleted_at IS NULL", webhook_id
    )
    return row


async def delete(connection: asyncpg.Connection, webhook_id: uuid.UUID) -> bool:
    """Stop the webhook; its pending deliveries fail (the log is kept)."""
    async with connection.transaction():
        status = await connection.execute(
            "UPDATE webhooks SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
            webhook_id,
        )
        await connection.execute(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,"
            " last_error = 'the webhook was deleted' WHERE webhook_id = $1 AND status = 'pending'",
            webhook_id,
        )
    return bool(status != "UPDATE 0")


async def resume(connection: asyncpg.Connection, webhook_id: uuid.UUID) -> asyncpg.Record | None:
    """Unpause the webhook: its pending deliveries are due at once."""
    async with connection.transaction():
        row: asyncpg.Record | None = await connection.fetchrow(
            "UPDATE webhooks SET paused_at = NULL, failures = 0"
            f" WHERE id = $1 AND deleted_at IS NULL RETURNING {_COLUMNS}",
            webhook_id,
        )
        if row is not None:
            await connection.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = now()"
                " WHERE webhook_id = $1 AND status = 'pending'",
                webhook_id,
            )
    return row


_DELIVERY_COLUMNS = (
    "id, webhook_id, created_at, from_cursor, to_cursor, changes, status, attempts,"
    " next_attempt_at, last_attempt_at, last_status_code, last_error, delivered_at"
)


async def deliveries(
    connection: asyncpg.Connection, webhook_id: uuid.UUID, *, limit: int
) -> list[asyncpg.Record]:
    """The webhook's newest deliveries, newest first."""
    rows: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1"
        " ORDER BY created_at DESC, id DESC LIMIT $2",
        webhook_id,
        limit,
    )
    return rows


async def retry(
    connection: asyncpg.Connection, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> asyncpg.Record | None:
    """Send a delivery again (a failed or delivered one too): due now, attempts counted
    afresh. None when the webhook has no such delivery."""
    row: asyncpg.Record | None = await connection.fetchrow(
        f"""
        UPDATE webhook_deliveries d
        SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
        FROM webhooks w
        WHERE d.id = $2 AND d.webhook_id = $1 AND w.id = d.webhook_id AND w.deleted_at IS NULL
        RETURNING {", ".join(f"d.{c.strip()}" for c in _DELIVERY_COLUMNS.split(","))}
        """,
        webhook_id,
        delivery_id,
    )
    return row


async def plan(connection: asyncpg.Connection, settings: WebhookSettings) -> int:
    """Cut every active webhook's new changes into deliveries; how many were made."""
    made = 0
    ids = await connection.fetch(
        "SELECT id FROM webhooks WHERE deleted_at IS NULL AND paused_at IS NULL"
    )
    for row in ids:
        made += await _plan_one(connection, row["id"], settings)
    return made


async def _plan_one(
    connection: asyncpg.Connection, webhook_id: uuid.UUID, settings: WebhookSettings
) -> int:
    made = 0
    while True:
        async with connection.transaction():
            # Another worker planning this webhook has it: leave it to that one.
            webhook = await connection.fetchrow(
                "SELECT entities, district_ids, cursor_xid, cursor_seq FROM webhooks"
                " WHERE id = $1 AND deleted_at IS NULL AND paused_at IS NULL"
                " FOR UPDATE SKIP LOCKED",
                webhook_id,
            )
            if webhook is None:
                return made
            after = changes.Position(webhook["cursor_xid"], webhook["cursor_seq"])
            entries, position = await changes.read(
                connection,
                after,
                district_ids=webhook["district_ids"],
                district_id=None,
                entities=webhook["entities"],
                limit=settings.max_changes,
            )
            if position != after:
                await connection.execute(
                    "UPDATE webhooks SET cursor_xid = $2, cursor_seq = $3 WHERE id = $1",
                    webhook_id,
                    position.xid,
                    position.seq,
                )
            if not entries:
                return made
            delivery_id = uuid.uuid4()
            listed = f"[{','.join(entries)}]"
            body: dict[str, Any] = {
                "delivery_id": str(delivery_id),
                "webhook_id": str(webhook_id),
                "from_cursor": str(after),
                "to_cursor": str(position),
                "count": len(entries),
            }
            if len(listed.encode()) > settings.max_body_bytes:
                # Too much for one POST: the receiver reads them from the feed.
                body["changes"] = None
            else:
                body["changes"] = orjson.Fragment(listed.encode())
            await connection.execute(
                "INSERT INTO webhook_deliveries (id, webhook_id, from_cursor, to_cursor,"
                " changes, body, status) VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'pending')",
                delivery_id,
                webhook_id,
                str(after),
                str(position),
                len(entries),
                orjson.dumps(body).decode(),
            )
            made += 1
        if len(entries) < settings.max_changes:
            return made


async def _claim(
    pool: asyncpg.Pool, webhook_id: uuid.UUID, settings: WebhookSettings
) -> asyncpg.Record | None:
    """The webhook's oldest pending delivery when it is due, leased to this worker for as
    long as an attempt can take."""
    row: asyncpg.Record | None = await pool.fetchrow(
        """
        UPDATE webhook_deliveries d
        SET next_attempt_at = now() + make_interval(secs => $2)
        FROM webhooks w
        WHERE d.id = (
            SELECT id FROM webhook_deliveries
            WHERE webhook_id = $1 AND status = 'pending'
            ORDER BY created_at, id LIMIT 1
            FOR UPDATE SKIP LOCKED
        ) AND d.next_attempt_at <= now()
          AND w.id = d.webhook_id AND w.deleted_at IS NULL AND w.paused_at IS NULL
        RETURNING d.id, d.body::text AS body, d.attempts, w.url, w.secret
        """,
        webhook_id,
        settings.timeout_seconds * 2 + 5,
    )
    return row


async def _attempt(
    client: httpx.AsyncClient, delivery: asyncpg.Record, settings: WebhookSettings
) -> tuple[int | None, str | None]:
    """POST the delivery once: (status code, error), error None on a 2xx."""
    body = delivery["body"].encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(delivery["secret"], timestamp, body),
        DELIVERY_HEADER: str(delivery["id"]),
    }
    try:
        response = await client.post(
            delivery["url"], content=body, headers=headers, timeout=settings.timeout_seconds
        )
    except httpx.TimeoutException:
        return None, f"no answer within {settings.timeout_seconds:g} s"
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    if response.is_redirect:
        return response.status_code, "redirects are not followed"
    return response.status_code, f"answered {response.status_code}"


async def _record(
    pool: asyncpg.Pool,
    delivery: asyncpg.Record,
    status_code: int | None,
    error: str | None,
    settings: WebhookSettings,
) -> None:
    attempts = delivery["attempts"] + 1
    async with pool.acquire() as connection, connection.transaction():
        if error is None:
            await connection.execute(
                "UPDATE webhook_deliveries SET status = 'succeeded', attempts = $2,"
                " last_attempt_at = now(), last_status_code = $3, last_error = NULL,"
                " delivered_at = now(), next_attempt_at = NULL WHERE id = $1",
                delivery["id"],
                attempts,
                status_code,
            )
            await connection.execute(
                "UPDATE webhooks SET failures = 0 WHERE id ="
                " (SELECT webhook_id FROM webhook_deliveries WHERE id = $1)",
                delivery["id"],
            )
            return
        backoff = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempts - 1))
        gave_up = attempts >= settings.max_attempts
        await connection.execute(
            "UPDATE webhook_deliveries SET attempts = $2, last_attempt_at = now(),"
            " last_status_code = $3, last_error = $4,"
            " status = CASE WHEN $5 THEN 'failed' ELSE 'pending' END,"
            " next_attempt_at = CASE WHEN $5 THEN NULL"
            "                   ELSE now() + make_interval(secs => $6) END"
            " WHERE id = $1",
            delivery["id"],
            attempts,
            status_code,
            error,
            gave_up,
            backoff,
        )
        await connection.execute(
            "UPDATE webhooks SET failures = failures + 1,"
            " paused_at = CASE WHEN failures + 1 >= $2 THEN now() ELSE paused_at END"
            " WHERE id = (SELECT webhook_id FROM webhook_deliveries WHERE id = $1)",
            delivery["id"],
            settings.pause_after,
        )


async def _send_for(
    pool: asyncpg.Pool,
    client: httpx.AsyncClient,
    webhook_id: uuid.UUID,
    settings: WebhookSettings,
) -> int:
    """Send the webhook's due deliveries in order, until one fails; how many were sent."""
    sent = 0
    while (delivery := await _claim(pool, webhook_id, settings)) is not None:
        status_code, error = await _attempt(client, delivery, settings)
        await _record(pool, delivery, status_code, error, settings)
        if error is not None:
            break
        sent += 1
    return sent


async def dispatch(
    pool: asyncpg.Pool, settings: WebhookSettings, client: httpx.AsyncClient | None = None
) -> tuple[int, int]:
    """Plan new deliveries and send the due ones: (deliveries made, deliveries sent)."""
    async with pool.acquire() as connection:
        made = await plan(connection, settings)
    active = await pool.fetch(
        "SELECT id FROM webhooks WHERE deleted_at IS NULL AND paused_at IS NULL"
    )
    own = client is None
    http = client or httpx.AsyncClient(follow_redirects=False)
    try:
        counts = await asyncio.gather(
            *(_send_for(pool, http, row["id"], settings) for row in active)
        )
    finally:
        if own:
            await http.aclose()
    return made, sum(counts)
