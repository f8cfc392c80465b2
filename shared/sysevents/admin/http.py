"""The admin API's machinery: one request (`Call`), one route (`Route`), authentication, dispatch.

Authentication: every route but `/` and `/openapi.json` needs a key, sent as `X-API-Key: <key>` or
`Authorization: Bearer <key>`. (Behind Cloud Functions IAM, `Authorization` carries the identity token:
send the key in `X-API-Key`.) Routes under `/accounts/{aid}` refuse a key of another account with 403;
the operator key may act for any account and alone manages accounts. Each route names the scope an
account key needs (read < jobs < admin, sysevents.admin.keys.SCOPES); a narrower key gets 403. A
revoked or expired key, or one minted from a revoked key, gets 401 saying which.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Request, Response
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map

from sysevents.admin.errors import ApiError
from sysevents.admin.keys import AID_PATTERN, KeyRefused, KeyStore, Principal
from sysevents.admin.validation import JOB_ID
from sysevents.events.strictjson import InvalidJSON, load
from sysevents.jobs.secrets import SealingError
from sysevents.jobs.store import JobNotFound, VersionConflict
from sysevents.shares import AtShare
from sysevents.templates.sandbox import AccountBusy, SandboxBusy

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.admin")
MAX_PAGE_SIZE = 200
MAX_BODY_DEPTH = 16
"""Nesting levels a request body may have (a job's config is a few levels deep)."""


@dataclass
class Call:
    """One request, authenticated: what handlers get."""

    request: Request
    rt: Runtime
    principal: Principal | None
    body: Any = None

    @property
    def keys(self) -> KeyStore:
        return self.rt.keys

    def query_int(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.request.args.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"must be an integer from {lo} to {hi}", name) from None
        if not lo <= value <= hi:
            raise ApiError(400, f"must be an integer from {lo} to {hi}", name)
        return value

    def query_token(self, name: str, pattern: re.Pattern) -> str | None:
        """A page token (the id to continue after): only ever an id this API handed out."""
        raw = self.request.args.get(name)
        if raw is None or raw == "":
            return None
        if not pattern.match(raw):
            raise ApiError(400, "not a page token this API handed out (use next_page_token as given)", name)
        return raw

    def dry_run(self) -> bool:
        return self.request.args.get("dry_run", "").lower() in ("1", "true", "yes")

    def expected_version(self) -> int | None:
        """From If-Match (`3`, `"3"` or `W/"3"`) or the body's `version` field; both given must agree."""
        found = []
        header = self.request.headers.get("If-Match")
        if header and header.strip() != "*":
            found.append(("If-Match", header.strip().removeprefix("W/").strip('"')))
        if isinstance(self.body, dict) and self.body.get("version") is not None:
            found.append(("version", self.body["version"]))
        versions = []
        for name, raw in found:
            try:
                if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                    raise ValueError
                version = int(raw)
                if not 1 <= version < 2**63:
                    raise ValueError
                versions.append(version)
            except (TypeError, ValueError, OverflowError):
                raise ApiError(400, f"must be a job version number, got {str(raw)[:40]!r}", name) from None
        if len(set(versions)) > 1:
            raise ApiError(400, f"If-Match ({versions[0]}) and version ({versions[1]}) disagree", "version")
        return versions[0] if versions else None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[..., Response]
    summary: str
    auth: str = "account"  # "none" | "any" | "account" (operator too) | "operator"
    scope: str = "jobs"  # account keys need this scope or a wider one: "read" (GETs only), "jobs", "admin"
    body: str | None = None  # request schema name in the OpenAPI document
    ok: int = 200
    response: str | None = None  # response schema name
    query: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    form: bool = False  # the body is not JSON (an HTML form's, an RFC 8058 one-click): left unparsed


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def _authorize(route: Route, args: dict[str, str], keys: KeyStore, request: Request) -> Principal | None:
    if route.auth == "none":
        return None
    key = _presented_key(request)
    try:
        principal = keys.authenticate(key) if key else None
    except KeyRefused as err:
        raise ApiError(401, str(err), "X-API-Key") from None
    if principal is None:
        raise ApiError(401, "missing, unknown or revoked API key (send it as X-API-Key)", "X-API-Key")
    if route.auth == "operator" and not principal.operator:
        raise ApiError(403, "this route needs the operator key")
    if not principal.has_scope(route.scope):
        raise ApiError(
            403, f"this route needs a key with the {route.scope} scope; this key has {principal.scope}"
        )
    aid = args.get("aid")
    if aid is not None and not principal.may_act_for(aid):
        raise ApiError(403, f"this key belongs to another account; it cannot act for account {aid!r}", "aid")
    return principal


def _body(route: Route, request: Request, rt: Runtime) -> Any:
    raw = request.get_data(cache=True)
    limit = rt.settings.admin_max_body_bytes
    if len(raw) > limit:
        raise ApiError(413, f"request body is {len(raw)} bytes; the limit is {limit} bytes")
    if not raw.strip():
        return None
    try:
        body = load(raw, what="request body", max_depth=MAX_BODY_DEPTH)
    except InvalidJSON as err:
        field, sep, _ = err.reason.partition(": ")
        named = sep and field and not field.startswith(("request body", "event"))
        raise ApiError(400, err.reason, field if named else None) from None
    if route.body is not None and not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


PATH_PARAMS = {
    "aid": AID_PATTERN,
    "job_id": JOB_ID,
    "prefix": re.compile(r"^[A-Za-z0-9_]{1,40}$"),
    "token": re.compile(r"^[A-Za-z0-9_=-]{40,1000}$"),
}
"""What each path parameter may be; anything else names no resource (checked before any lookup)."""


def _check_path(args: dict[str, str]) -> None:
    for name, value in args.items():
        pattern = PATH_PARAMS.get(name)
        if pattern is not None and not pattern.match(value):
            raise ApiError(404, f"no such {name.replace('_', ' ')}: {value[:40]!r} is not a valid one", name)


def dispatch(request: Request, routes: tuple[Route, ...], url_map: Map, rt: Runtime) -> Response:
    try:
        try:
            index_, args = url_map.bind_to_environ(request.environ).match()
        except NotFound:
            raise ApiError(404, f"no route {request.method} {request.path}; see /openapi.json") from None
        except MethodNotAllowed as err:
            allowed = ", ".join(sorted(err.valid_methods or ()))
            raise ApiError(
                405, f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
            ) from None
        route = routes[index_]
        _check_path(args)
        principal = _authorize(route, args, rt.keys, request)
        parsed = request.method in ("POST", "PUT", "PATCH", "DELETE") and not route.form
        body = _body(route, request, rt) if parsed else None
        return route.handler(Call(request, rt, principal, body), **args)
    except ApiError as err:
        return err.response()
    except JobNotFound as err:
        return ApiError(404, str(err), "job_id").response()
    except VersionConflict as err:
        return ApiError(409, str(err), "version").response()
    except SandboxBusy as err:  # the account's own renders past its cap: 429; every worker busy: 503
        response = ApiError(429 if isinstance(err, AccountBusy) else 503, str(err)).response()
        response.headers["Retry-After"] = str(math.ceil(err.retry_after))
        return response
    except AtShare as err:  # the account at one of its caps (sysevents.shares)
        response = ApiError(429, str(err)).response()
        response.headers["Retry-After"] = str(math.ceil(err.retry_after))
        return response
    except SealingError as err:
        log.error("admin: %s", err)
        return ApiError(500, f"server configuration: {err}").response()
