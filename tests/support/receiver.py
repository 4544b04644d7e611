"""A webhook receiver on loopback for the tests of outbound webhooks: it checks each
delivery's signature, answers as scripted, and keeps each delivery once by its id."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from app.api.webhook import InvalidSignatureError, verify
from app.history import webhooks
from app.history.webhooks import DELIVERY_HEADER
from app.mirror.queries.changes import Position
from app.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER

SECRET = "a-webhook-secret-of-length"

Json = dict[str, Any]


@dataclass
class Receiver:
    """Answers as scripted (an int status, "slow" past the timeout, "wait" until released),
    then 200; keeps each delivery once, by delivery id."""

    url: str = ""
    script: list[int | str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    kept: dict[str, Json] = field(default_factory=dict)
    bad_signatures: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            delivery = request.headers[DELIVERY_HEADER]
            self.attempts.append(delivery)
            try:
                verify(
                    [SecretStr(SECRET)],
                    timestamp=request.headers.get(TIMESTAMP_HEADER),
                    signature=request.headers.get(SIGNATURE_HEADER),
                    body=body,
                    now=time.time(),
                )
            except InvalidSignatureError:
                self.bad_signatures += 1
                return Response(status_code=401)
            step = self.script.pop(0) if self.script else 200
            if step == "slow":
                await asyncio.sleep(2)
            elif step == "wait":
                await asyncio.to_thread(self.release.wait, 30)
            elif isinstance(step, int) and step != 200:
                return Response(status_code=step)
            self.kept.setdefault(delivery, json.loads(body))
            return Response(status_code=204)

        @app.post("/moved")
        async def moved() -> Response:
            return Response(status_code=307, headers={"Location": "/hook"})

        return app


async def planted_webhook(
    connection: asyncpg.Connection, district_id: str, *, actor: str
) -> tuple[str, list[str]]:
    """A webhook of the district's district record, planned from the start of the feed and
    never sent (its URL answers nothing): its id and its deliveries' ids."""
    row = await webhooks.create(
        connection,
        url="http://127.0.0.1:9/never",
        secret=SECRET,
        entities=["districts"],
        district_ids=[district_id],
        actor=actor,
        start=Position(0, 0),
    )
    await webhooks.plan(connection, webhooks.WebhookSettings())
    deliveries = await webhooks.deliveries(connection, row["id"], limit=10)
    return str(row["id"]), [str(delivery["id"]) for delivery in deliveries]
