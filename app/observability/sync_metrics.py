"""Per-district sync metrics for `/metrics`, read from Postgres when scraped.

Syncs run in any number of worker processes, so their figures are added up in Postgres as
runs end (`sync_totals`, `clever_error_totals`, written by `app.sync.runs`) and every API
process reports the same values: scrape one replica, or take `max` across them. District ids
are labels, so only a scrape with an API key gets them, for the districts the key may see.
Alert on `time() - roster_sync_last_success_timestamp_seconds > 26 * 3600`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.mirror.queries.shapes import district_connection, district_paused


@dataclass
class _Snapshot:
    totals: list[asyncpg.Record] = field(default_factory=list)
    errors: list[asyncpg.Record] = field(default_factory=list)
    districts: list[asyncpg.Record] = field(default_factory=list)


class SyncMetrics(Collector):
    """Yields the figures `refresh` read (one instance per scrape)."""

    def __init__(self) -> None:
        self._snapshot = _Snapshot()

    async def refresh(self, connection: asyncpg.Connection, district_ids: list[str] | None) -> None:
        """Read the figures of `district_ids` (None: every district)."""
        shown = "($1::text[] IS NULL OR {column} = ANY($1::text[]))"
        self._snapshot = _Snapshot(
            totals=await connection.fetch(
                f"SELECT * FROM sync_totals WHERE {shown.format(column='district_id')}"
                " ORDER BY district_id, mode, status",
                district_ids,
            ),
            errors=await connection.fetch(
                f"SELECT * FROM clever_error_totals WHERE {shown.format(column='district_id')}"
                " ORDER BY district_id, status",
                district_ids,
            ),
            districts=await connection.fetch(
                f"SELECT d.id, {district_connection('d')} = 'connected' AS connected,"
                f" {district_paused('d')} AS paused FROM districts d"
                f" WHERE {shown.format(column='d.id')} ORDER BY d.id",
                district_ids,
            ),
        )

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        runs = CounterMetricFamily(
            "roster_sync_runs",
            "Sync runs that ended, by district, mode and status.",
            labels=["district_id", "mode", "status"],
        )
        duration = CounterMetricFamily(
            "roster_sync_duration_seconds",
            "Time spent in sync runs that ended, by district and mode.",
            labels=["district_id", "mode"],
        )
        events = CounterMetricFamily(
            "roster_sync_events_applied",
            "Clever events applied by incremental runs, by district.",
            labels=["district_id"],
        )
        requests = CounterMetricFamily(
            "roster_clever_requests",
            "Requests sync runs made to Clever, retries included, by district.",
            labels=["district_id"],
        )
        errors = CounterMetricFamily(
            "roster_clever_errors",
            "Failed Clever requests of sync runs, by district and HTTP status (`network`: no "
            "answer).",
            labels=["district_id", "status"],
        )
        last_success = GaugeMetricFamily(
            "roster_sync_last_success_timestamp_seconds",
            "When the district's newest successful sync (either mode) ended, Unix time.",
            labels=["district_id"],
        )
        last_duration = GaugeMetricFamily(
            "roster_sync_last_duration_seconds",
            "How long the district's newest ended run of the mode took.",
            labels=["district_id", "mode"],
        )
        connected = GaugeMetricFamily(
            "roster_district_connected",
            "1 while a Clever token serves the district, 0 when it is disconnected.",
            labels=["district_id"],
        )
        paused = GaugeMetricFamily(
            "roster_district_paused",
            "1 while Clever has the district's syncing paused.",
            labels=["district_id"],
        )
        by_district: dict[str, dict[str, float]] = {}
        newest: dict[tuple[str, str], asyncpg.Record] = {}
        seconds: dict[tuple[str, str], float] = {}
        for row in snapshot.totals:
            district, mode = row["district_id"], row["mode"]
            runs.add_metric([district, mode, row["status"]], row["runs"])
            sums = by_district.setdefault(district, {"events": 0, "requests": 0, "success": 0})
            sums["events"] += row["events_applied"]
            sums["requests"] += row["clever_requests"]
            if row["status"] == "succeeded":
                sums["success"] = max(sums["success"], row["last_finished_at"].timestamp())
            key = (district, mode)
            seconds[key] = seconds.get(key, 0.0) + row["duration_seconds"]
            if key not in newest or row["last_finished_at"] > newest[key]["last_finished_at"]:
                newest[key] = row
        for (district, mode), total in seconds.items():
            duration.add_metric([district, mode], total)
            last_duration.add_metric(
                [district, mode], newest[(district, mode)]["last_duration_seconds"]
            )
        for district, sums in by_district.items():
            events.add_metric([district], sums["events"])
            requests.add_metric([district], sums["requests"])
            if sums["success"]:
                last_success.add_metric([district], sums["success"])
        for row in snapshot.errors:
            errors.add_metric([row["district_id"], row["status"]], row["responses"])
        for row in snapshot.districts:
            connected.add_metric([row["id"]], 1.0 if row["connected"] else 0.0)
            paused.add_metric([row["id"]], 1.0 if row["paused"] else 0.0)
        yield from (
            runs,
            duration,
            events,
            requests,
            errors,
            last_success,
            last_duration,
            connected,
            paused,
        )
