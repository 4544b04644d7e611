"""Webhook signatures: what a sender computes, and what the service accepts."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from app.api.webhook import TOLERANCE_SECONDS, InvalidSignatureError, verify
from app.signing import sign

NOW = 1_700_000_000
BODY = b'{"district_id": "d1", "mode": "full"}'
SECRETS = [SecretStr("current-secret"), SecretStr("next-secret")]


def _verify(
    *,
    timestamp: str | None = str(NOW),
    signature: str | None,
    body: bytes = BODY,
    now: float = NOW,
    secrets: list[SecretStr] = SECRETS,
) -> str:
    return verify(secrets, timestamp=timestamp, signature=signature, body=body, now=now)


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"k", b"123." + BODY, hashlib.sha256).hexdigest()
    assert sign("k", "123", BODY) == f"v1={expected}"


@pytest.mark.parametrize("secret", ["current-secret", "next-secret"])
def test_a_delivery_signed_with_any_configured_secret_is_accepted(secret: str) -> None:
    signature = sign(secret, str(NOW), BODY)
    assert _verify(signature=signature) == signature.removeprefix("v1=")


def test_the_matching_signature_is_returned_in_lower_case() -> None:
    signature = sign("current-secret", str(NOW), BODY)
    assert _verify(signature=signature.upper().replace("V1=", "v1=")) == signature[3:]


def test_one_matching_signature_among_several_is_enough() -> None:
    good = sign("next-secret", str(NOW), BODY)
    bad = sign("retired-secret", str(NOW), BODY)
    assert _verify(signature=f"{bad}, {good}") == good[3:]


@pytest.mark.parametrize("offset", [-TOLERANCE_SECONDS, 0, TOLERANCE_SECONDS])
def test_timestamps_within_the_tolerance_are_accepted(offset: int) -> None:
    timestamp = str(NOW + offset)
    assert _verify(timestamp=timestamp, signature=sign("current-secret", timestamp, BODY))


@pytest.mark.parametrize("offset", [-TOLERANCE_SECONDS - 1, TOLERANCE_SECONDS + 1])
def test_timestamps_outside_the_tolerance_are_refused_even_when_signed(offset: int) -> None:
    timestamp = str(NOW + offset)
    with pytest.raises(InvalidSignatureError, match="300 s"):
        _verify(timestamp=timestamp, signature=sign("current-secret", timestamp, BODY))


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "message"),
    [
        (str(NOW), sign("wrong-secret", str(NOW), BODY), BODY, "does not match"),
        (str(NOW), sign("current-secret", str(NOW), BODY), BODY + b" ", "does not match"),
        (str(NOW), sign("current-secret", str(NOW - 1), BODY), BODY, "does not match"),
        (str(NOW), sign("current-secret", str(NOW), BODY)[3:], BODY, "must be `v1=<hex>`"),
        (str(NOW), "v1=" + "zz" * 32, BODY, "must be `v1=<hex>`"),
        (str(NOW), "v1=abcd", BODY, "must be `v1=<hex>`"),
        (str(NOW), "v0=" + "ab" * 32, BODY, "must be `v1=<hex>`"),
        (None, sign("current-secret", str(NOW), BODY), BODY, "needs both"),
        (str(NOW), None, BODY, "needs both"),
        ("", "", BODY, "needs both"),
        ("17e8", sign("current-secret", "17e8", BODY), BODY, "unix seconds"),
        ("-5", sign("current-secret", "-5", BODY), BODY, "unix seconds"),
        ("٣٣", sign("current-secret", "٣٣", BODY), BODY, "unix seconds"),
        ("9" * 40, sign("current-secret", "9" * 40, BODY), BODY, "unix seconds"),
    ],
)
def test_bad_deliveries_are_refused(
    timestamp: str | None, signature: str | None, body: bytes, message: str
) -> None:
    with pytest.raises(InvalidSignatureError, match=message):
        _verify(timestamp=timestamp, signature=signature, body=body)


def test_no_configured_secret_refuses_every_delivery() -> None:
    with pytest.raises(InvalidSignatureError, match="not enabled"):
        _verify(signature=sign("", str(NOW), BODY), secrets=[])
