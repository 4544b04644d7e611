"""`roster keys create|list|revoke` as a consumer's operator runs them."""

from __future__ import annotations

import hashlib
import subprocess

import asyncpg

from app.api.keys import find_key
from app.settings import Settings
from tests.e2e.test_processes import ROSTER, _environment


def _roster(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROSTER, "keys", *args],
        env=_environment(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_created_key_is_printed_once_listed_without_secret_and_revocable(
    settings: Settings,
) -> None:
    created = _roster(
        settings, "create", "--name", "grades app", "--scope", "roster:read",
        "--scope", "sync:write", "--district", "d1", "--district", "d2",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("rk_") and len(secret) > 40

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        grant = await find_key(connection, secret)
        assert grant is not None
        assert grant.name == "grades app"
        assert grant.scopes == {"roster:read", "sync:write"}
        assert grant.district_ids == frozenset({"d1", "d2"})
        # The row holds a SHA-256 digest and the listed prefix; no column, as text or as
        # bytes, holds the secret (or any 20 characters of it past the prefix).
        row = await connection.fetchrow(
            "SELECT secret_hash, prefix, row_to_json(k)::text AS everything"
            " FROM api_keys k WHERE name = 'grades app'"
        )
        assert row is not None
        assert row["secret_hash"] == hashlib.sha256(secret.encode()).digest()
        assert row["prefix"] == secret[:10]
        hidden = secret[10:30]
        assert hidden not in row["everything"], "the secret itself must not be stored"
        assert hidden.encode() not in row["secret_hash"]
        assert hidden.encode().hex() not in row["everything"]

        listed = _roster(settings, "list")
        assert listed.returncode == 0, listed.stderr
        line = next(line for line in listed.stdout.splitlines() if "\tgrades app\t" in line)
        assert line.split("\t")[2:5] == [secret[:10], "roster:read,sync:write", "d1,d2"]
        assert secret not in listed.stdout

        revoked = _roster(settings, "revoke", secret[:10])
        assert revoked.returncode == 0, revoked.stderr
        assert await find_key(connection, secret) is None
    finally:
        await connection.execute("DELETE FROM api_keys WHERE name = 'grades app'")
        await connection.close()


def test_unknown_scope_and_unknown_key_fail_clearly(settings: Settings) -> None:
    bad_scope = _roster(settings, "create", "--name", "x", "--scope", "roster:delete")
    assert bad_scope.returncode == 2
    assert "roster:read" in bad_scope.stderr

    missing = _roster(settings, "revoke", "rk_nothing")
    assert missing.returncode == 1
    assert "no key" in missing.stderr
