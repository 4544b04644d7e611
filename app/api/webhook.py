"""Signed webhooks: `POST /v1/sync` from a sender holding a shared secret, no API key.

The sender signs each delivery with one of SYNC_WEBHOOK_SECRETS (several while they rotate):

    X-Roster-Timestamp: <unix seconds>
    X-Roster-Signature: v1=<hex HMAC-SHA256 of "{X-Roster-Timestamp}.{raw body}">

A delivery is accepted within TOLERANCE_SECONDS of its timestamp, once: its signature is
remembered in Redis for longer than any timestamp stays acceptable, and a replay is answered
with the run the first delivery got, starting nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr

from app.api.auth import Principal, authenticate, bearer
from app.api.keys import Scope
from app.api.problems import ProblemError
from app.api.query import reject_unknown_query_parameters
from app.settings import Settings
from app.signing import SIGNATURE_HEADER, SIGNATURE_VERSION, TIMESTAMP_HEADER
from app.sync.runs import RunTrigger

TOLERANCE_SECONDS = 300
# Timestamps up to TOLERANCE_SECONDS ahead are accepted too, so a signature stays usable for
# twice the tolerance; it is remembered a minute beyond that.
REPLAY_WINDOW_SECONDS = 2 * TOLERANCE_SECONDS + 60
_DELIVERY_KEY_PREFIX = "roster:webhook:delivery:"
# What a delivery's key holds until the delivery has its run.
DELIVERY_PENDING = "pending"


class InvalidSignatureError(Exception):
    """The delivery is not signed with a configured secret, or not recently."""


def verify(
    secrets: Sequence[SecretStr],
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
) -> str:
    """Check a delivery's headers; return the signature that matched (lower-case hex).

    `signature` may list several `v1=` values separated by commas (a sender rotating its
    secret); one matching any configured secret is enough.
    """
    if not secrets:
        raise InvalidSignatureError("signed webhooks are not enabled on this service")
    if not timestamp or not signature:
        raise InvalidSignatureError(
            f"a signed webhook needs both {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}"
        )
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise InvalidSignatureError(f"{TIMESTAMP_HEADER} must be unix seconds")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise InvalidSignatureError(
            f"{TIMESTAMP_HEADER} is more than {TOLERANCE_SECONDS} s from the server's clock"
        )
    candidates = _signatures(signature)
    message = timestamp.encode() + b"." + body
    for secret in secrets:
        expected = hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).digest()
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                return candidate.hex()
    raise InvalidSignatureError(f"{SIGNATURE_HEADER} does not match the timestamp and body")


def _signatures(header: str) -> list[bytes]:
    found = []
    for item in header.split(","):
        version, _, value = item.strip().partition("=")
        if version != SIGNATURE_VERSION or len(value) != 2 * hashlib.sha256().digest_size:
            continue
        try:
            found.append(bytes.fromhex(value))
        except ValueError:
            continue
    if not found:
        raise InvalidSignatureError(f"{SIGNATURE_HEADER} must be `{SIGNATURE_VERSION}=<hex>`")
    return found


async def claim_delivery(redis: ArqRedis, signature: str) -> str | None:
    """Remember a delivery. None when it is new; else what its first arrival left: the id of
    the run it got, or DELIVERY_PENDING while that is still being decided."""
    key = _DELIVERY_KEY_PREFIX + signature
    if await redis.set(key, DELIVERY_PENDING, ex=REPLAY_WINDOW_SECONDS, nx=True):
        return None
    first: bytes | None = await redis.get(key)
    return first.decode() if first is not None else DELIVERY_PENDING


async def record_delivery(redis: ArqRedis, signature: str, run_id: uuid.UUID) -> None:
    """Note the run a delivery got, for its replays."""
    await redis.set(_DELIVERY_KEY_PREFIX + signature, str(run_id), ex=REPLAY_WINDOW_SECONDS)


async def forget_delivery(redis: ArqRedis, signature: str) -> None:
    """A delivery that got an error may be sent again as it was."""
    await redis.delete(_DELIVERY_KEY_PREFIX + signature)


@dataclass(frozen=True)
class SyncCaller:
    """Who asks for a sync: a key with `sync:write` (or `admin`), or a signed webhook."""

    principal: Principal | None
    # The signature of a webhook delivery, which identifies it for replays.
    delivery: str | None = None

    @property
    def trigger(self) -> RunTrigger:
        return RunTrigger.API if self.principal is not None else RunTrigger.WEBHOOK

    def sees(self, district_id: str) -> bool:
        """Webhooks speak for the service: every district. Keys see theirs."""
        return self.principal is None or self.principal.sees(district_id)


async def sync_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    timestamp: Annotated[
        str | None,
        Header(
            alias=TIMESTAMP_HEADER,
            description="Signed webhooks (no API key): when the delivery was signed, in unix "
            f"seconds; accepted within {TOLERANCE_SECONDS} s of the server's clock.",
        ),
    ] = None,
    signature: Annotated[
        str | None,
        Header(
            alias=SIGNATURE_HEADER,
            description="Signed webhooks (no API key): `v1=` and the hex HMAC-SHA256, keyed "
            "with a shared secret (SYNC_WEBHOOK_SECRETS), of the timestamp, a `.` and the raw "
            "body. Each signature is accepted once.",
        ),
    ] = None,
) -> SyncCaller:
    """An API key when one is sent, else a signed webhook; 401 when neither is valid."""
    if credentials is not None or (timestamp is None and signature is None):
        principal = await authenticate(request, credentials)
        if not principal.allows(Scope.SYNC_WRITE):
            raise ProblemError(
                403, f"This endpoint needs an API key with the `{Scope.SYNC_WRITE}` scope."
            )
        reject_unknown_query_parameters(request)
        return SyncCaller(principal)
    settings: Settings = request.state.settings
    try:
        delivery = verify(
            settings.sync_webhook_secrets,
            timestamp=timestamp,
            signature=signature,
            body=await request.body(),
            now=time.time(),
        )
    except InvalidSignatureError as exc:
        raise ProblemError(401, f"Webhook refused: {exc}.", title="Invalid signature") from None
    reject_unknown_query_parameters(request)
    return SyncCaller(None, delivery)


SyncCallerDep = Annotated[SyncCaller, Depends(sync_caller)]
