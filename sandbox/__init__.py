"""A fake Clever Data API v3.0/v3.1 server and the deterministic district generator behind it.

`sandbox.district.SandboxDistrict` is one generated district (records, relationships, changes,
events, and its `truth` for tests); `sandbox.server.create_sandbox_app` serves a set of them over
HTTP exactly the way Clever pages, authenticates and fails; `sandbox.server.serve` runs it.
"""
