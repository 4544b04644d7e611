"""A model-based test: random sequences of district changes, syncs, kills and decisions.

Hypothesis drives a tiny sandbox district and a mirror of it through rules: records are
created, updated, deleted, restored and unshared, terms roll over; full and incremental
syncs run (some of them killed midway); runs the mass-change guard holds are approved or
rejected; a local override and a custom group are made. After every sync that completes
the mirror equals the sandbox's truth, and no local edit is lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.local import groups, overrides
from app.settings import Settings
from app.sync.full import decide_held_run
from app.sync.runs import RunMode, RunStatus, RunTrigger
from app.sync.service import SyncDeps, sync_district
from sandbox.server import SandboxConfig, run_in_thread
from tests.integration.sync_sandbox.support import (
    assert_mirror_matches_truth,
    sandbox_settings,
    sync_deps,
)
from tests.reliability.support import (
    cloned_database,
    migrated_database,
    running_runs,
    write_report,
)
from tests.support.mirror import create_mirror_pool

pytestmark = pytest.mark.reliability


# A fixed seed's sequences, so CI runs the same ones; raise the examples to explore more.
MACHINE_SETTINGS = hypothesis_settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


# What the examples did, for the report.
STEPS: Counter[str] = Counter()


class MirrorMachine(RuleBasedStateMachine):
    """One district and its mirror; `template` is an empty migrated database to copy."""

    settings: Settings
    server_url: str
    template: str

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.sandbox_context = run_in_thread(SandboxConfig.build(size="tiny", seed=51))
        self.sandbox = self.sandbox_context.__enter__()
        self.district = self.sandbox.districts[0]
        self.database = cloned_database(self.server_url, self.template)
        url = self.run(self.database.__aenter__())
        self.pool: asyncpg.Pool = self.run(create_mirror_pool(url))
        configured = sandbox_settings(
            self.settings, sandbox=self.sandbox, district=self.district, page_size=20
        ).model_copy(update={"database_url": url})
        self.deps: SyncDeps = sync_deps(configured, pool=self.pool)
        self.held: uuid.UUID | None = None
        self.synced = False
        self.deleted: list[str] = []
        self.override: tuple[str, str] | None = None
        self.group: uuid.UUID | None = None

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.pool.close())
        self.run(self.database.__aexit__(None, None, None))
        self.sandbox_context.__exit__(None, None, None)
        self.loop.close()

    # --- the district changes -------------------------------------------------------------

    @initialize()
    def first_sync(self) -> None:
        self.sync(RunMode.FULL)

    @rule(n=st.integers(0, 10_000), name=st.sampled_from(["Ana", "Bo", "Zoë", "  Li  "]))
    def update_a_user(self, n: int, name: str) -> None:
        users = self.district.truth.ids("users", "student")
        if not users:  # all unshared
            return
        self.district.update(users[n % len(users)], {"name": {"first": name}})

    @rule(n=st.integers(0, 10_000))
    def delete_a_user(self, n: int) -> None:
        users = self.district.truth.ids("users", "student")
        if not users:
            return
        victim = users[n % len(users)]
        self.district.delete(victim)
        self.deleted.append(victim)

    @precondition(lambda self: bool(self.deleted))
    @rule()
    def restore_a_user(self) -> None:
        self.district.restore(self.deleted.pop())

    @rule(n=st.integers(0, 10_000))
    def create_a_student_in_a_section(self, n: int) -> None:
        sections = self.district.truth.ids("sections")
        student = self.district.create("users", role="student")
        self.district.add_students(sections[n % len(sections)], [student])

    @rule(n=st.integers(0, 10_000))
    def update_a_section(self, n: int) -> None:
        sections = self.district.truth.ids("sections")
        self.district.update(sections[n % len(sections)], {"name": f"Renamed {n}"})

    @rule(fraction=st.sampled_from([0.05, 0.5]))
    def unshare_students(self, fraction: float) -> None:
        self.district.unshare("users", fraction, role="student")

    @rule()
    def roll_over_terms(self) -> None:
        self.district.roll_over_terms()

    # --- local edits ------------------------------------------------------------------------

    @precondition(lambda self: self.synced and self.override is None)
    @rule()
    def override_a_name(self) -> None:
        user_id = self.run(
            self.pool.fetchval(
                "SELECT id FROM users WHERE deleted_at IS NULL AND 'teacher' = ANY(roles)"
                " ORDER BY id LIMIT 1"
            )
        )
        if user_id is None:
            return

        async def put() -> None:
            async with self.pool.acquire() as connection, connection.transaction():
                await overrides.set_overrides(
                    connection,
                    "users",
                    self.district.id,
                    user_id,
                    {"preferred_name": "Local name"},
                    actor="model",
                )

        self.run(put())
        self.override = (user_id, "Local name")

    @precondition(lambda self: self.synced and self.group is None)
    @rule()
    def make_a_group(self) -> None:
        teacher = self.run(
            self.pool.fetchval(
                "SELECT id FROM users WHERE deleted_at IS NULL AND 'teacher' = ANY(roles)"
                " ORDER BY id DESC LIMIT 1"
            )
        )
        if teacher is None:
            return

        async def make() -> uuid.UUID:
            async with self.pool.acquire() as connection, connection.transaction():
                return await groups.create_group(
                    connection,
                    district_id=self.district.id,
                    name="Model group",
                    owner_id=teacher,
                    member_ids=[],
                    source_section_id=None,
                    actor="model",
                )

        self.group = self.run(make())

    # --- syncs ------------------------------------------------------------------------------

    def sync(self, mode: RunMode) -> None:
        outcome = self.run(
            sync_district(self.deps, self.district.id, mode=mode, trigger=RunTrigger.CLI)
        )
        STEPS[f"{mode} sync {outcome.status}"] += 1
        if outcome.status is RunStatus.HELD:
            self.held = outcome.run_id
            return
        assert outcome.status is RunStatus.SUCCEEDED, outcome.error
        self.completed()

    def completed(self) -> None:
        """After a sync that completed: the mirror is the district's truth."""
        self.synced = True
        self.held = None
        self.run(assert_mirror_matches_truth(self.pool, district=self.district))
        assert self.run(running_runs(self.pool)) == 0

    @precondition(lambda self: self.held is None)
    @rule(mode=st.sampled_from(list(RunMode)))
    def run_a_sync(self, mode: RunMode) -> None:
        self.sync(mode)

    @precondition(lambda self: self.held is None and self.synced)
    @rule(mode=st.sampled_from(list(RunMode)), after=st.sampled_from([0.0, 0.02, 0.1, 0.3]))
    def kill_a_sync(self, mode: RunMode, after: float) -> None:
        async def killed() -> None:
            task = asyncio.ensure_future(
                sync_district(self.deps, self.district.id, mode=mode, trigger=RunTrigger.CLI)
            )
            await asyncio.sleep(after)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self.run(killed())
        STEPS[f"{mode} sync killed after {after} s"] += 1

    @precondition(lambda self: self.held is not None)
    @rule(approve=st.booleans())
    def decide_the_held_run(self, approve: bool) -> None:
        assert self.held is not None
        outcome = self.run(
            decide_held_run(
                self.pool,
                self.held,
                approve=approve,
                decided_by="model",
                options=self.deps.options,
            )
        )
        self.held = None
        STEPS["held run " + ("approved" if approve else "rejected")] += 1
        if approve:
            assert outcome.status is RunStatus.SUCCEEDED, outcome.error
            self.completed()
        else:
            assert outcome.status is RunStatus.REJECTED, outcome.error

    # --- what must always hold ----------------------------------------------------------------

    @invariant()
    def local_edits_are_kept(self) -> None:
        if self.override is not None:
            user_id, value = self.override
            stored = self.run(
                self.pool.fetchval(
                    "SELECT value #>> '{}' FROM overrides WHERE record_id = $1"
                    " AND field = 'preferred_name'",
                    user_id,
                )
            )
            assert stored == value
        if self.group is not None:
            name = self.run(self.pool.fetchval("SELECT name FROM groups WHERE id = $1", self.group))
            assert name == "Model group"


def test_any_sequence_of_changes_syncs_and_kills_keeps_the_mirror_true(
    settings: Settings, server_database_url: str
) -> None:
    with migrated_database(server_database_url, "roster_model") as template:
        MirrorMachine.settings = settings
        MirrorMachine.server_url = server_database_url
        MirrorMachine.template = template
        run_state_machine_as_test(MirrorMachine, settings=MACHINE_SETTINGS)
    write_report(
        "model",
        [{"step": step, "times": times} for step, times in sorted(STEPS.items())],
        ["step", "times"],
    )
