"""Signatures of webhook deliveries, inbound (`POST /v1/sync`) and outbound (to subscribers):

X-Roster-Timestamp: <unix seconds>
X-Roster-Signature: v1=<hex HMAC-SHA256 of "{X-Roster-Timestamp}.{raw body}">
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Roster-Timestamp"
SIGNATURE_HEADER = "X-Roster-Signature"
SIGNATURE_VERSION = "v1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Roster-Signature` value for a delivery (what a sender computes)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"
