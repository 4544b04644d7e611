"""`roster keys create|list|revoke` as a consumer's operator runs them."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import timedelta

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


async def _mirror_districts(settings: Settings, *district_ids: str) -> None:
    """Districts as a sync would have mirrored them: a key may be limited to them."""
    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        await connection.executemany(
            "INSERT INTO districts (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING",
            [(district_id,) for district_id in district_ids],
        )
    finally:
        await connection.close()


async def _forget_districts(settings: Settings, *district_ids: str) -> None:
    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        await connection.execute("DELETE FROM districts WHERE id = ANY($1::text[])", district_ids)
    finally:
        await connection.close()


async def test_a_created_key_is_printed_once_listed_without_secret_and_revocable(
    settings: Settings,
) -> None:
    await _mirror_districts(settings, "d1", "d2")
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
        await _forget_districts(settings, "d1", "d2")


async def test_a_key_for_a_district_that_is_not_mirrored_is_refused_naming_it(
    settings: Settings,
) -> None:
    await _mirror_districts(settings, "d-known")
    try:
        refused = _roster(
            settings, "create", "--name", "stray app", "--scope", "roster:read",
            "--district", "d-known", "--district", "doesnotexist", "--district", "nor-this",
        )  # fmt: skip
        assert refused.returncode == 2
        assert "'doesnotexist', 'nor-this'" in refused.stderr
        assert "d-known" not in refused.stderr
        assert refused.stdout == ""
        connection = await asyncpg.connect(settings.asyncpg_database_url)
        try:
            assert (
                await connection.fetchval("SELECT count(*) FROM api_keys WHERE name = 'stray app'")
                == 0
            )
        finally:
            await connection.close()
    finally:
        await _forget_districts(settings, "d-known")


async def test_a_key_revoked_by_its_secret_is_revoked_once(settings: Settings) -> None:
    created = _roster(settings, "create", "--name", "leaked app", "--scope", "roster:read")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        revoked = _roster(settings, "revoke", secret)
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked key" in revoked.stderr
        assert secret not in revoked.stderr + revoked.stdout
        assert await find_key(connection, secret) is None
        first = await connection.fetchval(
            "SELECT revoked_at FROM api_keys WHERE name = 'leaked app'"
        )

        again = _roster(settings, "revoke", secret[:10])
        assert again.returncode == 0, again.stderr
        assert "already revoked" in again.stderr
        assert first.isoformat(timespec="seconds") in again.stderr
        assert (
            await connection.fetchval("SELECT revoked_at FROM api_keys WHERE name = 'leaked app'")
            == first
        )
    finally:
        await connection.execute("DELETE FROM api_keys WHERE name = 'leaked app'")
        await connection.close()


async def test_scopes_may_be_separated_by_commas(settings: Settings) -> None:
    created = _roster(
        settings, "create", "--name", "comma app", "--scope", "roster:read, sync:write"
    )
    assert created.returncode == 0, created.stderr
    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        grant = await find_key(connection, created.stdout.strip())
        assert grant is not None and grant.scopes == {"roster:read", "sync:write"}
    finally:
        await connection.execute("DELETE FROM api_keys WHERE name = 'comma app'")
        await connection.close()


def test_unknown_scope_and_unknown_key_fail_clearly(settings: Settings) -> None:
    bad_scope = _roster(
        settings, "create", "--name", "x", "--scope", "roster:read", "--scope", "roster:delete"
    )
    assert bad_scope.returncode == 2
    # The bad value named, then every valid one.
    assert "unknown scope 'roster:delete'" in bad_scope.stderr
    assert "roster:read, roster:write, roster:sensitive, sync:write, console, admin" in (
        bad_scope.stderr
    )

    missing = _roster(settings, "revoke", "rk_nothing")
    assert missing.returncode == 1
    assert "no key" in missing.stderr


async def test_a_key_created_to_expire_is_rotated_to_a_successor(settings: Settings) -> None:
    created = _roster(
        settings, "create", "--name", "rota app", "--scope", "roster:read", "--expires-in", "90d"
    )
    assert created.returncode == 0, created.stderr
    assert "expires" in created.stderr + created.stdout
    old_secret = created.stdout.strip().splitlines()[-1]

    rotated = _roster(settings, "rotate", old_secret[:10], "--grace", "2d")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip().splitlines()[-1]
    assert new_secret.startswith("rk_") and new_secret != old_secret

    connection = await asyncpg.connect(settings.asyncpg_database_url)
    try:
        old = await connection.fetchrow(
            "SELECT id, expires_at - now() AS left, replaced_by FROM api_keys WHERE prefix = $1",
            old_secret[:10],
        )
        new = await connection.fetchrow(
            "SELECT id, name, expires_at - created_at AS lifetime FROM api_keys WHERE prefix = $1",
            new_secret[:10],
        )
        assert old is not None and new is not None
        assert old["replaced_by"] == new["id"] and new["name"] == "rota app"
        assert timedelta(days=1, hours=23) < old["left"] <= timedelta(days=2)
        assert new["lifetime"] == timedelta(days=90)
        # Both work during the grace period.
        assert await find_key(connection, old_secret) is not None
        assert await find_key(connection, new_secret) is not None

        again = _roster(settings, "rotate", str(old["id"]))
        assert again.returncode == 1 and "rotated already" in again.stderr
        listed = _roster(settings, "list")
        line = next(line for line in listed.stdout.splitlines() if line.startswith(str(old["id"])))
        assert line.split("\t")[-1] == str(new["id"])
    finally:
        await connection.execute("DELETE FROM api_keys WHERE name = 'rota app'")
        await connection.close()


def test_a_bad_duration_is_named(settings: Settings) -> None:
    bad = _roster(
        settings, "create", "--name", "x", "--scope", "roster:read", "--expires-in", "soon"
    )
    assert bad.returncode == 2
    assert "--expires-in" in bad.stderr and "90d" in bad.stderr
