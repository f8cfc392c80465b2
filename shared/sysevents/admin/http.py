"""The admin API's machinery: one request (`Call`), one route (`Route`), authentication, dispatch.

Authentication: every route but `/` and `/openapi.json` needs a key, sent as `X-API-Key: <key>` or
`Authorization: Bearer <key>`. (Behind Cloud Functions IAM, `Authorization` carries the identity token:
send the key in `X-API-Key`.) Routes under `/accounts/{aid}` refuse a key of another account with 403;
the operator key may act for any account and alone manages accounts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Request, Response
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map

from ..secrets import SealingError
from ..store import JobNotFound, VersionConflict
from .errors import ApiError
from .keys import KeyStore, Principal

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("sysevents.admin")
MAX_PAGE_SIZE = 200


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
                if isinstance(raw, bool):
                    raise ValueError
                versions.append(int(raw))
            except (TypeError, ValueError):
                raise ApiError(400, f"must be a job version number, got {raw!r}", name) from None
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
    scope: str = "jobs"  # account keys need this scope: "jobs" (any key) or "admin" (keys of the account)
    body: str | None = None  # request schema name in the OpenAPI document
    ok: int = 200
    response: str | None = None  # response schema name
    query: tuple[tuple[str, str], ...] = field(default_factory=tuple)


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
    principal = keys.authenticate(key) if key else None
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
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"request body is not valid JSON: {err}") from None


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
        principal = _authorize(route, args, rt.keys, request)
        body = _body(route, request, rt) if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
        return route.handler(Call(request, rt, principal, body), **args)
    except ApiError as err:
        return err.response()
    except JobNotFound as err:
        return ApiError(404, str(err), "job_id").response()
    except VersionConflict as err:
        return ApiError(409, str(err), "version").response()
    except SealingError as err:
        log.error("admin: %s", err)
        return ApiError(500, f"server configuration: {err}").response()
