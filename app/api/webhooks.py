"""Outbound webhooks: subscribers the worker POSTs the change feed to. Needs `admin`.

Each delivery is signed like the inbound webhook (`X-Roster-Timestamp`, `X-Roster-Signature`
with the webhook's secret) and carries a unique `X-Roster-Delivery` id: a delivery may
arrive twice (a retry after a lost answer), so receivers dedupe by it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from app.api.auth import AUTH_RESPONSES, AdminAccess, Principal
from app.api.changes import CURSOR_PATTERN, feed_position
from app.api.deps import ID_PATTERN, not_found
from app.api.problems import not_found_responses
from app.history import webhooks
from app.mirror.queries.changes import Entity

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=AUTH_RESPONSES)
NOT_FOUND = not_found_responses("webhook")

WebhookId = Annotated[uuid.UUID, Path(description="A webhook's id.")]
DistrictIdText = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(description="Where deliveries are POSTed: http or https only.")
    # Stored as Postgres text, which cannot hold NUL.
    secret: Annotated[
        str, StringConstraints(min_length=16, max_length=256, pattern=r"^[^\x00]*$")
    ] = Field(description="Signs every delivery (HMAC-SHA256); never shown again.")
    entities: list[Entity] | None = Field(
        default=None, min_length=1, description="Only changes of these kinds (none: all)."
    )
    districts: list[DistrictIdText] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Only changes of these districts (none: every district the key sees).",
    )
    from_cursor: Annotated[str, StringConstraints(pattern=CURSOR_PATTERN)] | None = Field(
        default=None,
        description="Feed the changes after this `/v1/changes` cursor (a consumer moving from"
        " polling to webhooks); none: the changes made from now on.",
    )


class Webhook(BaseModel):
    id: uuid.UUID
    url: str
    entities: list[str] | None
    districts: list[str] | None
    created_at: datetime
    created_by: str
    paused: bool = Field(description="Paused after repeated failures; resume to go on.")
    paused_at: datetime | None
    failures: int = Field(description="Failed attempts in a row.")
    cursor: str = Field(description="The feed position its deliveries have reached.")


class WebhookList(BaseModel):
    data: list[Webhook]


class Delivery(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    created_at: datetime
    from_cursor: str
    to_cursor: str
    changes: int
    status: str = Field(description="`pending`, `succeeded` or `failed` (attempts ran out).")
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    data: list[Delivery]


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(
        id=row["id"],
        url=row["url"],
        entities=row["entities"],
        districts=row["district_ids"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        paused=row["paused_at"] is not None,
        paused_at=row["paused_at"],
        failures=row["failures"],
        cursor=f"{row['cursor_xid']}-{row['cursor_seq']}",
    )


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.state.pool
    return pool


def _manages(principal: Principal, row: asyncpg.Record) -> bool:
    """A key limited to some districts manages the webhooks of those districts only."""
    if principal.district_ids is None:
        return True
    return row["district_ids"] is not None and set(row["district_ids"]) <= set(
        principal.district_ids
    )


async def _owned(
    connection: asyncpg.Connection, principal: Principal, webhook_id: uuid.UUID
) -> asyncpg.Record:
    """The webhook, when the key may manage it (else 404, as for an unknown id)."""
    row = await webhooks.found(connection, webhook_id)
    if row is None or not _manages(principal, row):
        raise not_found("webhook", str(webhook_id))
    return row


@router.post(
    "/webhooks",
    name="webhooks-create",
    summary="Create a webhook",
    response_model=Webhook,
    status_code=201,
    responses=not_found_responses("district"),
)
async def create_webhook(
    principal: AdminAccess, request: Request, body: Annotated[NewWebhook, Body()]
) -> Webhook:
    """Subscribe a URL to the changes made from now on."""
    districts: Any = body.districts
    if principal.district_ids is not None:
        if districts is None:
            districts = principal.district_ids
        elif unseen := sorted(set(districts) - set(principal.district_ids)):
            # As for any id the key may not see: as if there were no such district.
            raise not_found("district", unseen[0])
    async with _pool(request).acquire() as connection:
        start = None
        if body.from_cursor is not None:
            start = await feed_position(connection, body.from_cursor)
        row = await webhooks.create(
            connection,
            url=str(body.url),
            secret=body.secret,
            entities=list(body.entities) if body.entities else None,
            district_ids=sorted(set(districts)) if districts else None,
            actor=principal.name,
            start=start,
        )
    return _webhook(row)


@router.get("/webhooks", name="webhooks-list", summary="List webhooks", response_model=WebhookList)
async def list_webhooks(principal: AdminAccess, request: Request) -> WebhookList:
    """The webhooks this key may manage, oldest first."""
    async with _pool(request).acquire() as connection:
        rows = await webhooks.listed(connection)
    shown = [_webhook(row) for row in rows if _manages(principal, row)]
    return WebhookList(data=shown)


@router.get(
    "/webhooks/{webhook_id}",
    name="webhooks-get",
    summary="Get a webhook",
    response_model=Webhook,
    responses=NOT_FOUND,
)
async def get_webhook(webhook_id: WebhookId, principal: AdminAccess, request: Request) -> Webhook:
    """One webhook."""
    async with _pool(request).acquire() as connection:
        return _webhook(await _owned(connection, principal, webhook_id))


@router.delete(
    "/webhooks/{webhook_id}",
    name="webhooks-delete",
    summary="Delete a webhook",
    status_code=204,
    responses=NOT_FOUND,
)
async def delete_webhook(webhook_id: WebhookId, principal: AdminAccess, request: Request) -> None:
    """Stop a webhook; its pending deliveries are dropped, its delivery log kept."""
    async with _pool(request).acquire() as connection:
        await _owned(connection, principal, webhook_id)
        await webhooks.delete(connection, webhook_id)


@router.post(
    "/webhooks/{webhook_id}/resume",
    name="webhooks-resume",
    summary="Resume a paused webhook",
    response_model=Webhook,
    responses=NOT_FOUND,
)
async def resume_webhook(
    webhook_id: WebhookId, principal: AdminAccess, request: Request
) -> Webhook:
    """Unpause a webhook paused after failures: its pending deliveries are sent next."""
    async with _pool(request).acquire() as connection:
        await _owned(connection, principal, webhook_id)
        row = await webhooks.resume(connection, webhook_id)
    if row is None:
        raise not_found("webhook", str(webhook_id))
    return _webhook(row)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    name="webhooks-list-deliveries",
    summary="List a webhook's deliveries",
    response_model=DeliveryList,
    responses=NOT_FOUND,
)
async def list_deliveries(
    webhook_id: WebhookId,
    principal: AdminAccess,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500, description="How many, newest first.")] = 100,
) -> DeliveryList:
    """The webhook's deliveries, newest first, with their attempts."""
    async with _pool(request).acquire() as connection:
        await _owned(connection, principal, webhook_id)
        rows = await webhooks.deliveries(connection, webhook_id, limit=limit)
    return DeliveryList(data=[Delivery.model_validate(dict(row)) for row in rows])


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    name="webhooks-retry-delivery",
    summary="Retry a webhook delivery",
    response_model=Delivery,
    responses=not_found_responses("delivery"),
)
async def retry_delivery(
    webhook_id: WebhookId,
    delivery_id: Annotated[uuid.UUID, Path(description="A delivery's id.")],
    principal: AdminAccess,
    request: Request,
) -> Delivery:
    """Send a delivery again, failed or not: it is due at once, its attempts start afresh."""
    async with _pool(request).acquire() as connection:
        await _owned(connection, principal, webhook_id)
        row = await webhooks.retry(connection, webhook_id, delivery_id)
    if row is None:
        raise not_found("delivery", str(delivery_id))
    return Delivery.model_validate(dict(row))
