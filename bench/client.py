"""Scenario `client`: how fast `CleverClient` pages a district, and at what memory cost.

The sandbox serves the district from its own process; the client runs in this one and reads
every collection at `limit=10000`, once counting raw JSON records (`page.raw_records`, what
the sync uses) and once building the wire models (`page.records`). Peak RSS is reset
between the two, for this process and for the sandbox's.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from app.clever.client import MAX_PAGE_SIZE, CleverClient
from app.sync.full import COLLECTIONS
from bench import report
from bench.options import BenchOptions
from bench.processes import Sandbox, cpu_seconds, current_rss, peak_rss, reset_peak_rss
from bench.processes import sandbox_process as start_sandbox

MODES = ("raw", "parsed")


@dataclass
class ModeFigures:
    mode: str
    seconds: float = 0.0
    records: int = 0
    pages: int = 0
    requests: int = 0
    client_cpu_seconds: float = 0.0
    client_rss_before: int = 0
    client_peak_rss: int = 0
    sandbox_cpu_seconds: float = 0.0
    sandbox_peak_rss: int = 0
    records_by_collection: dict[str, int] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


async def read_district(sandbox: Sandbox, mode: str) -> ModeFigures:
    """Page through every collection once; figures for this one pass."""
    figures = ModeFigures(mode)
    gc.collect()
    reset_peak_rss()
    reset_peak_rss(sandbox.pid)
    figures.client_rss_before = current_rss()
    sandbox_cpu = cpu_seconds(sandbox.pid)
    cpu = time.process_time()
    started = time.perf_counter()
    async with CleverClient(
        sandbox.token,
        base_url=sandbox.base_url,
        api_version="v3.1",
        district_id=sandbox.district_id,
        page_size=MAX_PAGE_SIZE,
    ) as client:
        for collection in COLLECTIONS:
            records = 0
            async for page in client.iter_pages(collection):
                figures.pages += 1
                records += len(page.raw_records if mode == "raw" else page.records)
            figures.records_by_collection[collection] = records
        figures.requests = client.request_count
    figures.seconds = time.perf_counter() - started
    figures.client_cpu_seconds = time.process_time() - cpu
    figures.records = sum(figures.records_by_collection.values())
    figures.client_peak_rss = peak_rss()
    figures.sandbox_peak_rss = peak_rss(sandbox.pid)
    figures.sandbox_cpu_seconds = cpu_seconds(sandbox.pid) - sandbox_cpu
    return figures


async def run(options: BenchOptions) -> dict[str, Any]:
    """Run the scenario, print its table, save its figures."""
    with start_sandbox(
        options.size, log_dir=options.log_dir, startup_timeout=options.timeout
    ) as sandbox:
        sandbox_idle_rss = current_rss(sandbox.pid)
        passes = [await read_district(sandbox, mode) for mode in MODES]
    rows = [
        [
            f.mode,
            report.seconds(f.seconds),
            report.count(f.records),
            report.rate(f.records_per_second),
            f"{f.pages} / {f.requests}",
            report.seconds(f.client_cpu_seconds),
            report.megabytes(f.client_rss_before),
            report.megabytes(f.client_peak_rss),
            report.seconds(f.sandbox_cpu_seconds),
            report.megabytes(f.sandbox_peak_rss),
        ]
        for f in passes
    ]
    report.print_table(
        f"client: every collection of a size-{options.size} district at limit {MAX_PAGE_SIZE}"
        f" (sandbox idle RSS {report.megabytes(sandbox_idle_rss)})",
        [
            "records as",
            "wall",
            "records",
            "records/s",
            "pages/requests",
            "client CPU",
            "client RSS before",
            "client peak RSS",
            "sandbox CPU",
            "sandbox peak RSS",
        ],
        rows,
    )
    figures = {
        "sandbox_idle_rss": sandbox_idle_rss,
        "passes": [asdict(f) | {"records_per_second": f.records_per_second} for f in passes],
    }
    report.write_json(options.results_dir, "client", options.size, figures)
    return figures
