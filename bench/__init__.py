"""Benchmarks of the roster mirror, run as `python -m bench <scenario>`.

Scenarios:

* `client`: page through every collection of a sandbox district with `CleverClient`,
  parsed models versus raw JSON; wall time, records/s, peak RSS of client and sandbox.
* `sync`: the real `roster sync` in a child process against a sandbox in another: first
  sync, no-change re-sync (which must write nothing), and a plain `COPY` of the same rows
  into a fresh database as the baseline.
* `api`: `GET /v1/teachers/{id}/students` and `GET /v1/users/{id}/sections/by-term` on a
  synced district, served by `roster api` (1 and 2 processes) to 32 closed-loop keep-alive
  clients, beside `pgbench` running the endpoints' own SQL at the same concurrency: req/s,
  p50/p99, the API/pgbench ratio and CPU per request.
* `profile`: the sync in this process with timers around its phases and every SQL
  statement, then once more under cProfile.

Each scenario prints a table and writes `bench/results/<scenario>-<size>.json`. Absolute
times are noisy; the ratios measured side by side in one run are what matter.
"""
