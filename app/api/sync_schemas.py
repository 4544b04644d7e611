"""Request and response models of the sync endpoints and the data warnings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ID_PATTERN
from app.sync.runs import RunMode, RunStatus, RunTrigger


class SyncRequestBody(BaseModel):
    """What to sync."""

    model_config = ConfigDict(extra="forbid")

    district_id: Annotated[str, Field(pattern=ID_PATTERN, description="A district's Clever id.")]
    mode: RunMode = Field(
        default=RunMode.FULL,
        description="`full` reads every collection again. `incremental` applies Clever's "
        "events since the last sync, and runs as a full sync by itself (the run's "
        "`fallback_reason` says why) when there is no usable events cursor.",
    )


class SyncRun(BaseModel):
    """One sync of one district, from queued to its end."""

    id: uuid.UUID
    district_id: str
    mode: RunMode
    trigger: RunTrigger = Field(description="What asked for the run.")
    status: RunStatus = Field(
        description="`queued`, `running`, then `succeeded` or `failed`; `held` when the "
        "mass-change guard stopped it until it is approved (then `succeeded`) or rejected; "
        "`coalesced` when another sync of the district was running when it started."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None = Field(description="Empty while queued, running or held.")
    counts: dict[str, dict[str, int]] = Field(
        description="Per table: rows `created`, `updated`, `deactivated`, `unchanged` (a "
        "full sync counts every live row and link it left as it was; an incremental one, "
        "those of the records its events named). `data_warnings`: `opened`, `seen_again` "
        "(still true from an earlier run), `resolved`. An incremental run also counts its "
        "`events`: `applied`, `skipped` (kinds it does not mirror), `invalid`."
    )
    progress: dict[str, dict[str, int]] = Field(
        description="Per Clever collection: `pages` and `records` read so far."
    )
    warnings_count: int = Field(
        description="Data warnings the run found true: `opened` plus `seen_again`."
    )
    clever_requests: int = Field(description="Requests the run made to Clever.")
    clever_errors: dict[str, int] = Field(
        description="Failed Clever requests (retried or not) by HTTP status; `network` for "
        "those that got no answer."
    )
    error: str | None = Field(description="Why the run failed (or was coalesced or rejected).")
    held_reason: str | None = Field(description="What the mass-change guard found too much.")
    fallback_reason: str | None = Field(
        description="Why an incremental run became a full sync (`mode` is then `full`): no "
        "events cursor yet, a cursor Clever no longer accepts, events not enabled for the "
        "district, or the last successful sync too long ago."
    )
    idle: bool = Field(
        description="An incremental run that found no new events (an idle poll); left out of "
        "run listings unless `include_idle=true`."
    )
    decided_at: datetime | None = Field(description="When a held run was approved or rejected.")
    decided_by: str | None = Field(description="The name of the key that approved or rejected.")


SYNC_RUN_COLUMNS = ", ".join(SyncRun.model_fields)


class DataWarning(BaseModel):
    """A problem found in a district's data: the record was kept, the problem
    noted; resolved when a later sync no longer sees it."""

    id: int
    district_id: str
    entity: str = Field(description="The collection of the record: `users`, `sections`, ...")
    record_id: str | None = Field(description="Null when the record had no id.")
    field: str | None
    code: str = Field(description="What is wrong, e.g. `invalid_email`.")
    detail: str | None
    first_seen_at: datetime
    first_run_id: uuid.UUID | None
    resolved: bool
    resolved_at: datetime | None
    resolved_run_id: uuid.UUID | None


class WarningCount(BaseModel):
    """How many warnings with one code (and, as asked by `by`, of one district, kind or
    school) are open, and how many were resolved."""

    code: str
    district_id: str | None = Field(
        default=None, description="With `by=district`: the district; else null."
    )
    entity: str | None = Field(default=None, description="With `by=entity`: the kind of record.")
    school_id: str | None = Field(
        default=None,
        description="With `by=school`: the record's school (a user's primary school, a "
        "section's school, the school itself); null for records of no school.",
    )
    open: int
    resolved: int


class WarningSummary(BaseModel):
    """Warning counts per code (and the groups `by` asks for), in that order."""

    data: list[WarningCount]
