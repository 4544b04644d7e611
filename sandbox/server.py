"""The sandbox over HTTP: Clever's v3.0/v3.1 routes, OAuth token discovery and admin routes.

    GET  /v3.0|v3.1/{districts,schools,users,sections,terms,courses}[/{id}]
    GET  /v3.0|v3.1/{sections,schools,terms,courses,users}/{id}/{nested}  (see sandbox.relations)
    GET  /v3.0|v3.1/events[/{id}]
    GET  /oauth/tokens?owner_type=district[&district=ID] HTTP Basic client id/secret
    GET  /sandbox/districts                              admin secret
    GET  /sandbox/districts/{id}/truth                   admin secret or the district's token
    POST /sandbox/districts/{id}/changes                 admin secret or the district's token
    GET|PUT|PATCH /sandbox/faults, GET /sandbox/stats, POST /sandbox/stats/reset

Admin routes take `Authorization: Bearer <admin secret>`; they are never subject to faults.
Every error, unknown routes and methods included, answers Clever's `{"message": "..."}`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import gc
import hmac
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from sandbox.changes import apply_changes
from sandbox.config import DistrictConfig, EdgeRates
from sandbox.district import COLLECTIONS, ChangeError, SandboxDistrict
from sandbox.faults import FaultConfig, FaultMiddleware, RequestStats, bearer_token
from sandbox.ids import CODE_OF_ROLE, Code
from sandbox.paging import page
from sandbox.relations import LISTS, SINGLES, RelationError, Relations
from sandbox.truth import Truth

VERSIONS = ("v3.0", "v3.1")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
RECORD_TYPES = frozenset({"users", "sections", "terms", "courses", "schools", "districts"})
TOKEN_SCOPES = (
    "read:district_admins",
    "read:school_admins",
    "read:students",
    "read:teachers",
    "read:user_id",
    "read:sis",
    "read:sections",
    "read:contacts",
    "read:staff",
)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox server serves: its districts, faults and credentials."""

    districts: tuple[DistrictConfig, ...] = (DistrictConfig(),)
    faults: FaultConfig = field(default_factory=FaultConfig)
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    admin_secret: str = "sandbox-admin-secret"

    @classmethod
    def build(
        cls,
        *,
        size: str = "S",
        seed: int = 1,
        districts: int = 1,
        rates: EdgeRates | None = None,
        events_enabled: bool = True,
        faults: FaultConfig | None = None,
        messy: bool = False,
        today: dt.date | None = None,
        **credentials: str,
    ) -> SandboxConfig:
        """`districts` districts of one size; district k uses seed `seed + k`. Their school
        year is the one around `today` (the current date unless given)."""
        today = today or dt.date.today()
        configs = tuple(
            DistrictConfig(
                size=size,
                seed=seed + k,
                rates=rates,
                events_enabled=events_enabled,
                messy=messy,
                today=today,
            )
            for k in range(districts)
        )
        return cls(districts=configs, faults=faults or FaultConfig(), **credentials)


class SandboxState:
    """The live sandbox: districts by id and token, fault settings, request counters."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.districts: dict[str, SandboxDistrict] = {}
        for district_config in config.districts:
            district = SandboxDistrict(district_config)
            if district.id in self.districts:
                raise ValueError(f"two districts share seed {district_config.seed}")
            self.districts[district.id] = district
        self.faults = config.faults
        self.stats = RequestStats()

    def district_for_token(self, token: str | None) -> SandboxDistrict | None:
        """The district a bearer token belongs to (tokens rotate, districts revoke: looked up
        afresh each time)."""
        if not token:
            return None
        for district in self.districts.values():
            if district.authorized and hmac.compare_digest(district.token, token):
                return district
        return None

    def district(self, district_id: str) -> SandboxDistrict:
        """A district by id (KeyError when unknown)."""
        return self.districts[district_id]

    def truth(self, district_id: str) -> Truth:
        """The truth API of a district."""
        return self.districts[district_id].truth

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault settings (takes effect with the next request)."""
        self.faults = faults


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _message(status: int, message: str) -> Response:
    return _json({"message": message}, status)


def _limit(raw: str | None) -> int | Response:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        return _message(400, "limit must be an integer")
    if limit < 1:
        return _message(400, "limit must be a positive integer")
    if limit > MAX_LIMIT:
        return _message(413, f"limit must be less than or equal to {MAX_LIMIT}")
    return limit


def _links(
    request: Request,
    base: str,
    records: Sequence[Mapping[str, Any]],
    full: bool,
    kept: list[tuple[str, str]],
    backwards: bool,
    had_cursor: bool,
) -> list[dict[str, str]]:
    """Clever's paging links: `next` whenever more may follow, `prev` likewise backwards."""
    query = request.url.query
    links = [{"rel": "self", "uri": f"{request.url.path}{'?' + query if query else ''}"}]
    if not records:
        return links
    more_after = (not backwards and full) or backwards
    more_before = (backwards and full) or (not backwards and had_cursor)
    if more_after:
        after = urlencode([*kept, ("starting_after", records[-1]["id"])])
        links.append({"rel": "next", "uri": f"{base}?{after}"})
    if more_before:
        before = urlencode([*kept, ("ending_before", records[0]["id"])])
        links.append({"rel": "prev", "uri": f"{base}?{before}"})
    return links


def _page_body(
    records: Sequence[Mapping[str, Any]], uri_prefix: str, links: list[dict[str, str]]
) -> bytes:
    return orjson.dumps(
        {
            "data": [{"data": record, "uri": uri_prefix + record["id"]} for record in records],
            "links": links,
        }
    )


def _add_error_handlers(api: FastAPI) -> None:
    """Answer every error as Clever does, `{"message": "..."}`, never FastAPI's `detail`."""

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return _json({"message": str(error.detail)}, error.status_code, error.headers)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}"
            for item in error.errors()
        )
        return _message(400, f"invalid request: {problems}")

    @api.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        return _message(500, "internal error")


def _build_api(state: SandboxState) -> FastAPI:
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    _add_error_handlers(api)

    def authorize(request: Request) -> SandboxDistrict | Response:
        district = state.district_for_token(bearer_token(request.scope))
        if district is None:
            return _message(401, "invalid or missing bearer token")
        return district

    def is_admin(request: Request, district: SandboxDistrict | None = None) -> bool:
        token = bearer_token(request.scope) or ""
        if hmac.compare_digest(token.encode(), state.config.admin_secret.encode()):
            return True
        return district is not None and hmac.compare_digest(token.encode(), district.token.encode())

    @api.get("/oauth/tokens")
    def oauth_tokens(request: Request) -> Response:
        """Clever's token discovery: every district's token, for the app's credentials."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        expected = f"{state.config.client_id}:{state.config.client_secret}"
        if scheme.lower() != "basic" or not hmac.compare_digest(decoded, expected):
            return _message(401, "invalid client credentials")
        owner_type = request.query_params.get("owner_type", "district")
        only = request.query_params.get("district")
        districts = [
            district
            for district in state.districts.values()
            if owner_type == "district" and district.authorized and only in (None, district.id)
        ]
        data = [
            {
                "id": district.codec.encode(Code.TOKEN, 0),
                "created": district.token_created,
                "owner": {"type": "district", "id": district.id},
                "access_token": district.token,
                "scopes": list(TOKEN_SCOPES),
            }
            for district in districts
        ]
        uri = f"/oauth/tokens?{request.url.query}" if request.url.query else "/oauth/tokens"
        return _json({"data": data, "links": [{"rel": "self", "uri": uri}]})

    @api.get("/sandbox/districts")
    def sandbox_districts(request: Request) -> Response:
        """Every district with its token and counts (admin only)."""
        if not is_admin(request):
            return _message(401, "admin secret required")
        return _json(
            {
                "data": [
                    {
                        "id": district.id,
                        "name": district.name,
                        "token": district.token,
                        "authorized": district.authorized,
                        "size": district.config.spec.name,
                        "seed": district.config.seed,
                        "events_enabled": district.events_enabled,
                        "counts": district.truth.counts(),
                    }
                    for district in state.districts.values()
                ]
            }
        )

    @api.get("/sandbox/districts/{district_id}/truth")
    def sandbox_truth(request: Request, district_id: str) -> Response:
        """Counts, edge-case examples and the newest event of a district."""
        district = state.districts.get(district_id)
        if district is None:
            return _message(404, f"no district {district_id}")
        if not is_admin(request, district):
            return _message(401, "admin secret or district token required")
        truth = district.truth
        return _json(
            {
                "counts": truth.counts(),
                "edge_cases": truth.edge_cases,
                "newest_event": truth.newest_event_id(),
            }
        )

    @api.post("/sandbox/districts/{district_id}/changes")
    async def sandbox_changes(request: Request, district_id: str) -> Response:
        """Apply a change set (see `sandbox.changes`) and record its events."""
        district = state.districts.get(district_id)
        if district is None:
            return _message(404, f"no district {district_id}")
        if not is_admin(request, district):
            return _message(401, "admin secret or district token required")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _message(400, "body must be JSON")
        changes = body.get("changes") if isinstance(body, dict) else None
        if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
            return _message(400, 'expected {"changes": [ {...}, ... ]}')
        try:
            return _json(apply_changes(district, changes))
        except ChangeError as error:
            return _message(400, str(error))

    @api.get("/sandbox/faults")
    def get_faults(request: Request) -> Response:
        """The current fault settings."""
        if not is_admin(request):
            return _message(401, "admin secret required")
        return _json(state.faults.to_dict())

    @api.api_route("/sandbox/faults", methods=["PUT", "PATCH"])
    async def set_faults(request: Request) -> Response:
        """Change fault settings: PUT replaces them all, PATCH only those given."""
        if not is_admin(request):
            return _message(401, "admin secret required")
        try:
            changes = orjson.loads(await request.body())
            base = state.faults if request.method == "PATCH" else FaultConfig()
            state.set_faults(base.merged(changes))
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as error:
            return _message(400, f"invalid fault settings: {error}")
        return _json(state.faults.to_dict())

    @api.get("/sandbox/stats")
    def get_stats(request: Request) -> Response:
        """Requests served per district id (and `unauthenticated`)."""
        if not is_admin(request):
            return _message(401, "admin secret required")
        return _json(state.stats.snapshot())

    @api.post("/sandbox/stats/reset")
    def reset_stats(request: Request) -> Response:
        """Zero the request counters; fault schedules start again from request 1."""
        if not is_admin(request):
            return _message(401, "admin secret required")
        state.stats.reset()
        return _json(state.stats.snapshot())

    @api.get("/{version}/{collection}")
    def list_records(request: Request, version: str, collection: str) -> Response:
        """A page of a collection (or of events), exactly as Clever pages."""
        if version not in VERSIONS or (collection not in COLLECTIONS and collection != "events"):
            return _message(404, "not found")
        district = authorize(request)
        if isinstance(district, Response):
            return district
        params = request.query_params
        limit = _limit(params.get("limit"))
        if isinstance(limit, Response):
            return limit
        v31 = version == "v3.1"
        starting_after = params.get("starting_after") or None
        ending_before = params.get("ending_before") or None
        kept = [("limit", str(limit))] if "limit" in params else []
        if collection == "events":
            if not district.events_enabled:
                return _message(403, "events are not enabled for this district")
            record_types = params.getlist("record_type")
            unknown = set(record_types) - RECORD_TYPES
            if unknown:
                return _message(400, f"unknown record_type {sorted(unknown)[0]!r}")
            for cursor in (starting_after, ending_before):
                if cursor and cursor != "last" and not district.event_is_retained(cursor):
                    return _message(404, f"event {cursor} not found")
            records, full = district.page_events(
                record_types=record_types,
                starting_after=starting_after,
                ending_before=ending_before,
                limit=limit,
                v31=v31,
            )
            kept += [("record_type", record_type) for record_type in record_types]
        else:
            role = params.get("role") or None
            if role is not None and (collection != "users" or role not in CODE_OF_ROLE):
                return _message(400, f"invalid role {role!r}")
            records, full = district.page(
                collection,
                role=role,
                starting_after=starting_after,
                ending_before=ending_before,
                limit=limit,
                v31=v31,
            )
            if role:
                kept.append(("role", role))
        base = f"/{version}/{collection}"
        links = _links(
            request,
            base,
            records,
            full,
            kept,
            backwards=ending_before is not None,
            had_cursor=starting_after is not None,
        )
        return Response(_page_body(records, f"{base}/", links), media_type="application/json")

    @api.get("/{version}/{collection}/{record_id}")
    def get_record(request: Request, version: str, collection: str, record_id: str) -> Response:
        """One record, or 404 `{"message": ...}`."""
        if version not in VERSIONS or (collection not in COLLECTIONS and collection != "events"):
            return _message(404, "not found")
        district = authorize(request)
        if isinstance(district, Response):
            return district
        v31 = version == "v3.1"
        uri = f"/{version}/{collection}/{record_id}"
        if collection == "events":
            if not district.events_enabled:
                return _message(403, "events are not enabled for this district")
            event = district.get_event(record_id, v31)
            if event is None:
                return _message(404, f"event {record_id} not found")
            return _json({"data": event, "links": [{"rel": "self", "uri": uri}]})
        found = district.get(record_id, v31)
        if found is None or found[0] != collection:
            return _message(404, f"{collection[:-1]} {record_id} not found")
        return _json({"data": found[1], "links": [{"rel": "self", "uri": uri}]})

    @api.get("/{version}/{collection}/{record_id}/{nested}")
    def get_nested(
        request: Request, version: str, collection: str, record_id: str, nested: str
    ) -> Response:
        """A record's related records (`/sections/{id}/users`, ...), paged like a collection,
        or its one related record (`/sections/{id}/term`, ...)."""
        single = nested in SINGLES.get(collection, {})
        if version not in VERSIONS or not (single or nested in LISTS.get(collection, {})):
            return _message(404, "not found")
        district = authorize(request)
        if isinstance(district, Response):
            return district
        v31 = version == "v3.1"
        relations = Relations(district)
        base = f"/{version}/{collection}/{record_id}/{nested}"
        if single:
            try:
                record = relations.single(collection, record_id, nested, v31)
            except RelationError as error:
                return _message(error.status, error.message)
            return _json({"data": record, "links": [{"rel": "self", "uri": base}]})
        params = request.query_params
        limit = _limit(params.get("limit"))
        if isinstance(limit, Response):
            return limit
        try:
            listing = relations.listing(collection, record_id, nested, params)
        except RelationError as error:
            return _message(error.status, error.message)
        starting_after = params.get("starting_after") or None
        ending_before = params.get("ending_before") or None
        records, full = page(
            listing.segments,
            starting_after=starting_after,
            ending_before=ending_before,
            limit=limit,
            v31=v31,
        )
        kept = [("limit", str(limit))] if "limit" in params else []
        links = _links(
            request,
            base,
            records,
            full,
            kept + listing.kept,
            backwards=ending_before is not None,
            had_cursor=starting_after is not None,
        )
        body = _page_body(records, f"/{version}/{listing.collection}/", links)
        return Response(body, media_type="application/json")

    return api


class SandboxApp:
    """The sandbox's ASGI application, with its live `state` for in-process use."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        api = _build_api(state)
        self._app = FaultMiddleware(
            api,
            district_for_token=state.district_for_token,
            faults=lambda: state.faults,
            stats=state.stats,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    @property
    def districts(self) -> list[SandboxDistrict]:
        """The districts, in configuration order."""
        return list(self.state.districts.values())


def create_sandbox_app(config: SandboxConfig | None = None) -> SandboxApp:
    """Build the sandbox ASGI app (districts are generated lazily, so this is instant)."""
    return SandboxApp(SandboxState(config or SandboxConfig()))


@dataclass
class RunningSandbox:
    """A sandbox served by uvicorn in a background thread (see `run_in_thread`)."""

    app: SandboxApp
    base_url: str

    @property
    def state(self) -> SandboxState:
        """The live sandbox, shared with the server thread."""
        return self.app.state

    @property
    def districts(self) -> list[SandboxDistrict]:
        """The districts, in configuration order."""
        return self.app.districts


@contextlib.contextmanager
def run_in_thread(
    config: SandboxConfig | None = None, *, host: str = "127.0.0.1"
) -> Iterator[RunningSandbox]:
    """Serve a sandbox over real HTTP on a free loopback port for the duration of a block."""
    app = create_sandbox_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="critical", lifespan="off", ws="none", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    try:
        yield RunningSandbox(app, f"http://{host}:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(
    *,
    size: str = "S",
    host: str = "127.0.0.1",
    port: int = 8900,
    seed: int = 1,
    districts: int = 1,
    api_version: str = "v3.1",
    faults: FaultConfig | None = None,
    events_enabled: bool = True,
    messy: bool = False,
    today: dt.date | None = None,
    client_id: str = "sandbox-client-id",
    client_secret: str = "sandbox-client-secret",
    admin_secret: str = "sandbox-admin-secret",
    log_level: str = "warning",
) -> None:
    """Print the sandbox's base URL, districts and tokens, then serve it until interrupted.

    Both `/v3.0` and `/v3.1` are always served; `api_version` only picks the URL printed.
    """
    if api_version not in VERSIONS:
        raise ValueError(f"api_version must be one of {', '.join(VERSIONS)}")
    config = SandboxConfig.build(
        size=size,
        seed=seed,
        districts=districts,
        events_enabled=events_enabled,
        faults=faults,
        messy=messy,
        today=today,
        client_id=client_id,
        client_secret=client_secret,
        admin_secret=admin_secret,
    )
    app = create_sandbox_app(config)
    # A page of 10,000 records allocates ~100,000 dicts; with the default thresholds the
    # cyclic collector would rescan them many times per page. This process only serves, so
    # collect rarely (records hold no cycles).
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)
    base = f"http://{host}:{port}"
    year = config.districts[0].school_year
    print(f"Clever sandbox (size {size}, seed {seed}) at {base}")
    print(f"  School year:   {year}-{year + 1} (around {config.districts[0].today})")
    print(f"  API base URL:  {base}/{api_version}")
    print(f"  OAuth tokens:  GET {base}/oauth/tokens?owner_type=district")
    print(f"  OAuth client:  {client_id} / {client_secret}")
    print(f"  Admin secret:  {admin_secret}")
    for district in app.districts:
        counts = district.truth.counts()
        print(
            f"  district {district.id}  token {district.token}  "
            f"({counts['students']} students, {counts['sections']} sections)"
        )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, ws="none")
