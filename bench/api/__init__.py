"""Scenario `api` (`bench.api.scenario`) and its parts: the endpoints and the mirrored
database, the load generator, the pgbench driver, the servers, CPU accounting, the figures."""
