"""The admin API: one route table, each route a small handler. Routing is werkzeug's; the table also
generates the OpenAPI document (sysevents.admin.openapi), so the two cannot drift apart.

Authentication: every route but `/` and `/openapi.json` needs a key, sent as `X-API-Key: <key>` or
`Authorization: Bearer <key>`. (Behind Cloud Functions IAM, `Authorization` carries the identity token:
send the key in `X-API-Key`.) Routes under `/accounts/{aid}` refuse a key of another account with 403;
the operator key may act for any account and alone manages accounts.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Request, Response
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from ..events import InvalidEvent, event_from_dict
from ..jobs import WORKFLOWS, Job, JobState, WebhookConfig
from ..runtime import Runtime, runtime
from ..secrets import SealingError
from ..store import JobExists, JobNotFound, VersionConflict
from ..templates import SAMPLE_EVENT, TemplateError, render
from . import lifecycle
from .errors import ApiError, json_response
from .keys import (
    AID_PATTERN,
    MAX_NAME_CHARS,
    AccountExists,
    AccountNotFound,
    KeyNotFound,
    KeyStore,
    Principal,
)
from .validation import JOB_ID, STATES, editable, job_view, merge_patch, parse_job

log = logging.getLogger("sysevents.admin")
MAX_PAGE_SIZE = 200


@dataclass
class Call:
    """One request, authenticated: what handlers get."""

    request: Request
    rt: Runtime
    keys: KeyStore
    principal: Principal | None
    body: Any = None

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
    body: str | None = None  # request schema name in the OpenAPI document
    ok: int = 200
    response: str | None = None  # response schema name
    query: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _job_response(job: Job, status: int = 200, **extra: Any) -> Response:
    return json_response({**job_view(job), **extra}, status, {"ETag": f'"{job.version}"'})


# -- handlers ------------------------------------------------------------------------------------------------
def index(call: Call) -> Response:
    return json_response({"function": "admin", "service": "sysevents admin API", "openapi": "/openapi.json"})


def openapi_doc(call: Call) -> Response:
    from .openapi import document

    return json_response(document(ROUTES))


def whoami(call: Call) -> Response:
    p = call.principal
    assert p is not None
    return json_response({"operator": p.operator, "aid": p.aid, "prefix": p.prefix, "name": p.name})


def create_account(call: Call) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    aid = body.get("aid")
    if not isinstance(aid, str) or not AID_PATTERN.match(aid):
        raise ApiError(
            400, "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", "aid"
        )
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
        raise ApiError(400, f"must be a string of at most {MAX_NAME_CHARS} characters", "name")
    try:
        return json_response(call.keys.create_account(aid, name), 201)
    except AccountExists as err:
        raise ApiError(409, str(err), "aid") from None


def list_accounts(call: Call) -> Response:
    items, token = call.keys.list_accounts(
        call.query_int("page_size", 50, 1, MAX_PAGE_SIZE), call.request.args.get("page_token")
    )
    return json_response({"accounts": items, "next_page_token": token})


def create_key(call: Call, aid: str) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
        raise ApiError(
            400, f"required: a name of 1-{MAX_NAME_CHARS} characters saying who uses the key", "name"
        )
    try:
        key, record = call.keys.create_key(aid, name, call.principal.actor if call.principal else "")
    except AccountNotFound as err:
        raise ApiError(404, str(err), "aid") from None
    log.info("admin: key %s created for account %s by %s", record["prefix"], aid, record["created_by"])
    return json_response({**record, "key": key, "note": "store this key now: it is not shown again"}, 201)


def list_keys(call: Call, aid: str) -> Response:
    return json_response({"keys": call.keys.list_keys(aid)})


def revoke_key(call: Call, aid: str, prefix: str) -> Response:
    try:
        record = call.keys.revoke_key(aid, prefix)
    except KeyNotFound as err:
        raise ApiError(404, str(err), "prefix") from None
    log.info(
        "admin: key %s of account %s revoked by %s",
        prefix,
        aid,
        call.principal.actor if call.principal else "",
    )
    return json_response(record)


def list_jobs(call: Call, aid: str) -> Response:
    workflow = call.request.args.get("workflow")
    if workflow and workflow not in WORKFLOWS:
        raise ApiError(
            400, f"unknown workflow {workflow!r}; valid values: {', '.join(WORKFLOWS)}", "workflow"
        )
    state = call.request.args.get("state")
    if state and state not in STATES:
        raise ApiError(400, f"unknown state {state!r}; valid values: {', '.join(STATES)}", "state")
    jobs, token = call.rt.jobs.page(
        aid,
        workflow=workflow,
        state=state,
        limit=call.query_int("page_size", 50, 1, MAX_PAGE_SIZE),
        after=call.request.args.get("page_token"),
    )
    return json_response({"jobs": [job_view(j) for j in jobs], "next_page_token": token})


def create_job(call: Call, aid: str) -> Response:
    body = call.body
    job_id = (
        body.get("id") if isinstance(body, dict) and body.get("id") is not None else f"job-{uuid.uuid4().hex}"
    )
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise ApiError(
            400, "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit", "id"
        )
    if isinstance(body, dict) and "version" in body:
        raise ApiError(400, "a new job starts at version 1; do not send version", "version")
    job = parse_job(body, aid=aid, job_id=job_id, settings=call.rt.settings)
    if call.dry_run():
        return _job_response(job, 200, dry_run=True)
    try:
        job = call.rt.jobs.create(job)
    except JobExists as err:
        raise ApiError(409, str(err), "id") from None
    lifecycle.publish(call.rt, lifecycle.lifecycle_event(job, *lifecycle.describe(None, job), call.principal))
    return _job_response(job, 201)


def get_job(call: Call, aid: str, job_id: str) -> Response:
    return _job_response(call.rt.jobs.find(aid, job_id))


def _change(call: Call, aid: str, job_id: str, make: Callable[[Job], Job]) -> Response:
    expected = call.expected_version()
    if call.dry_run():
        current = call.rt.jobs.find(aid, job_id)
        if expected is not None and expected != current.version:
            raise VersionConflict(job_id, current.version, expected)
        return _job_response(make(current), 200, dry_run=True)
    old, new = call.rt.jobs.change(aid, job_id, make, expected)
    lifecycle.publish(call.rt, lifecycle.lifecycle_event(new, *lifecycle.describe(old, new), call.principal))
    return _job_response(new)


def _without_version(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "version"} if isinstance(body, dict) else body


def replace_job(call: Call, aid: str, job_id: str) -> Response:
    body = _without_version(call.body)
    if isinstance(body, dict) and body.get("id", job_id) != job_id:
        raise ApiError(400, f"does not match the job id in the path ({job_id!r})", "id")
    return _change(
        call,
        aid,
        job_id,
        lambda old: parse_job(body, aid=aid, job_id=job_id, settings=call.rt.settings, existing=old),
    )


def patch_job(call: Call, aid: str, job_id: str) -> Response:
    patch = _without_version(call.body)
    if not isinstance(patch, dict):
        raise ApiError(400, "request body must be a JSON merge patch object")
    if "id" in patch:
        raise ApiError(400, "a job's id cannot change", "id")
    return _change(
        call,
        aid,
        job_id,
        lambda old: parse_job(
            merge_patch(editable(old), patch), aid=aid, job_id=job_id, settings=call.rt.settings, existing=old
        ),
    )


def _set_state(state: JobState) -> Callable[..., Response]:
    def handler(call: Call, aid: str, job_id: str) -> Response:
        return _change(call, aid, job_id, lambda old: old.model_copy(update={"state": state}))

    handler.__name__ = f"{state.value}_job"
    return handler


def delete_job(call: Call, aid: str, job_id: str) -> Response:
    old = call.rt.jobs.remove(aid, job_id, call.expected_version())
    lifecycle.publish(call.rt, lifecycle.lifecycle_event(old, *lifecycle.describe(old, None), call.principal))
    return json_response({"id": job_id, "deleted": True, "version": old.version})


def _event_arg(body: dict, aid: str) -> dict:
    given = body.get("event")
    if given is None:
        sample = json.loads(json.dumps(SAMPLE_EVENT))
        sample["data"]["aid"] = aid
        sample["source"] = f"//sysevents/accounts/{aid}"
        return sample
    try:
        return event_from_dict(given, fallback_id="preview").to_cloudevent()
    except InvalidEvent as err:
        raise ApiError(400, err.reason, "event") from None


def preview_job(call: Call, aid: str, job_id: str) -> Response:
    """Render the job's template (or `json_template` from the body) against the body's event or a sample."""
    body = call.body if isinstance(call.body, dict) else {}
    job = call.rt.jobs.find(aid, job_id)
    template = body.get("json_template")
    if template is None and isinstance(job.config, WebhookConfig):
        template = job.config.json_template
    return _preview(call, aid, body, template)


def preview_template(call: Call, aid: str) -> Response:
    """Render `json_template` from the body (no job needed) against the body's event or a sample."""
    body = call.body if isinstance(call.body, dict) else {}
    return _preview(call, aid, body, body.get("json_template"))


def _preview(call: Call, aid: str, body: dict, template: Any) -> Response:
    if template is not None and not isinstance(template, str):
        raise ApiError(400, "must be a string (a Jsonnet template)", "json_template")
    event = _event_arg(body, aid)
    try:
        rendered = render(template, event, max_output_bytes=call.rt.settings.template_max_output_bytes)
    except TemplateError as err:
        raise ApiError(422, str(err), "json_template") from None
    return json_response({"rendered": json.loads(rendered), "event": event})


def test_job(call: Call, aid: str, job_id: str) -> Response:
    """Publish a test event the job's filter selects; ingest delivers it to this job only."""
    body = call.body if isinstance(call.body, dict) else {}
    overrides = body.get("event") or {}
    if not isinstance(overrides, dict):
        raise ApiError(400, "must be an object of event data fields to override", "event")
    job = call.rt.jobs.find(aid, job_id)
    if job.state is not JobState.ACTIVE:
        raise ApiError(409, f"job {job_id!r} is {job.state.value}; resume it to test it", "state")
    try:
        event = lifecycle.test_event(job, {k: v for k, v in overrides.items() if k != "aid"})
    except InvalidEvent as err:
        raise ApiError(400, err.reason, "event") from None
    ids = lifecycle.publish(call.rt, event)
    if not ids:
        raise ApiError(503, "could not publish the test event; try again")
    return json_response({"event": event.to_cloudevent(), "message_id": ids[0]}, 202)


AUDIT_FILTERS = ("subject_type", "subject_id", "verb", "start", "end", "page_token")


def search_audit(call: Call, aid: str) -> Response:
    """The account's audit log (BigQuery), newest first; only ever the caller's own account."""
    from ..bigquery.search import MAX_PAGE_SIZE as MAX_AUDIT_PAGE
    from ..bigquery.search import InvalidSearch
    from ..bigquery.search import search_audit as search

    args = {k: call.request.args.get(k) or None for k in AUDIT_FILTERS}
    try:
        page = search(aid, **args, page_size=call.query_int("page_size", 100, 1, MAX_AUDIT_PAGE))
    except InvalidSearch as err:
        field = err.reason.split(":", 1)[0] if err.reason.split(":", 1)[0] in AUDIT_FILTERS else None
        raise ApiError(400, err.reason, field) from None
    return json_response(page.to_dict())


def _time_arg(call: Call, name: str):
    from datetime import UTC, datetime

    raw = call.request.args.get(name) if call.body is None else (call.body or {}).get(name)
    if raw is None:
        return None
    try:
        t = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z", name) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _delivery_log(call: Call):
    from ..deliverylog import DeliveryLog

    return DeliveryLog(call.rt.firestore, retention_days=call.rt.settings.webhook_log_retention_days)


def job_deliveries(call: Call, aid: str, job_id: str) -> Response:
    """The job's webhook attempt log, newest first, and its dead-lettered deliveries."""
    job = call.rt.jobs.find(aid, job_id)
    dlog = _delivery_log(call)
    attempts = dlog.attempts(
        job.id, call.query_int("page_size", 50, 1, MAX_PAGE_SIZE), _time_arg(call, "before")
    )
    dead = [
        {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in d.items()
            if k not in ("data", "attributes", "expire_at")
        }
        for d in dlog.dead_letters(job.id, limit=100)
    ]
    return json_response(
        {"attempts": attempts, "dead_letters": dead, "next_before": attempts[-1]["at"] if attempts else None}
    )


def job_stats(call: Call, aid: str, job_id: str) -> Response:
    """received = delivered + filtered + dead_lettered + pending (README, Webhooks)."""
    job = call.rt.jobs.find(aid, job_id)
    return json_response(
        {
            "id": job.id,
            "state": job.state.value,
            "disabled_reason": job.disabled_reason,
            **_delivery_log(call).stats(job.id),
        }
    )


def replay_job(call: Call, aid: str, job_id: str) -> Response:
    """Re-deliver the job's dead-lettered deliveries (all, or since a time), current or chosen template."""
    from ..deliverylog import replay

    body = call.body if isinstance(call.body, dict) else {}
    job = call.rt.jobs.find(aid, job_id)
    if not isinstance(job.config, WebhookConfig):
        raise ApiError(400, "replay applies to webhook jobs", "workflow")
    version = body.get("template_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ApiError(400, "must be a job version number", "template_version")
    ids = replay(call.rt, job, since=_time_arg(call, "since"), template_version=version)
    return json_response({"replayed": len(ids), "webhook_ids": ids}, 202)


def console_page(call: Call, asset: str = "index.html") -> Response:
    """The web console's static files (sysevents/admin/console); it talks only to this API."""
    from .console import serve

    return serve(call.request, asset)


J = "/accounts/<aid>/jobs/<job_id>"
ROUTES: tuple[Route, ...] = (
    Route("GET", "/", index, "Service index", auth="none"),
    Route("GET", "/openapi.json", openapi_doc, "This API's OpenAPI 3 document", auth="none"),
    Route("GET", "/console/", console_page, "The web console (sign in with an account API key)", auth="none"),
    Route("GET", "/console/<asset>", console_page, "The web console's static assets", auth="none"),
    Route(
        "POST",
        "/accounts/<aid>/templates/preview",
        preview_template,
        "Render a Jsonnet template against a given or sample event, before saving a job (422 on error)",
        body="PreviewInput",
        response="Preview",
    ),
    Route(
        "GET",
        "/whoami",
        whoami,
        "The caller's key: operator or account, prefix, name",
        auth="any",
        response="Principal",
    ),
    Route(
        "POST",
        "/accounts",
        create_account,
        "Create an account (operator)",
        auth="operator",
        body="AccountInput",
        ok=201,
        response="Account",
    ),
    Route(
        "GET",
        "/accounts",
        list_accounts,
        "List accounts (operator)",
        auth="operator",
        response="AccountList",
        query=(("page_size", "1-200, default 50"), ("page_token", "next_page_token of the previous page")),
    ),
    Route(
        "POST",
        "/accounts/<aid>/keys",
        create_key,
        "Create an API key for the account; the key is shown once",
        body="KeyInput",
        ok=201,
        response="NewKey",
    ),
    Route("GET", "/accounts/<aid>/keys", list_keys, "List the account's keys by prefix", response="KeyList"),
    Route(
        "DELETE", "/accounts/<aid>/keys/<prefix>", revoke_key, "Revoke a key by its prefix", response="Key"
    ),
    Route(
        "GET",
        "/accounts/<aid>/jobs",
        list_jobs,
        "List jobs, paginated, filtered by workflow and state",
        response="JobList",
        query=(
            ("workflow", "only jobs of this workflow"),
            ("state", "active or paused"),
            ("page_size", "1-200, default 50"),
            ("page_token", "next_page_token of the previous page"),
        ),
    ),
    Route(
        "POST",
        "/accounts/<aid>/jobs",
        create_job,
        "Create a job (dry_run=true: validate only)",
        body="JobInput",
        ok=201,
        response="Job",
        query=(("dry_run", "validate only, store nothing"),),
    ),
    Route(
        "GET",
        "/accounts/<aid>/audit",
        search_audit,
        "Search the account's audit log (newest first, paginated)",
        response="AuditPage",
        query=(
            ("subject_type", "only this subject type"),
            ("subject_id", "only this subject"),
            ("verb", "only this verb"),
            ("start", "ISO 8601 time, inclusive"),
            ("end", "ISO 8601 time, exclusive"),
            ("page_size", "1-1000, default 100"),
            ("page_token", "next_page_token of the previous page"),
        ),
    ),
    Route("GET", J, get_job, "Get a job (ETag: its version)", response="Job"),
    Route(
        "PUT",
        J,
        replace_job,
        "Replace a job (If-Match or version: refused with 409 when stale)",
        body="JobInput",
        response="Job",
        query=(("dry_run", "validate only, store nothing"),),
    ),
    Route(
        "PATCH",
        J,
        patch_job,
        "Change part of a job (JSON merge patch; If-Match or version)",
        body="JobPatch",
        response="Job",
        query=(("dry_run", "validate only, store nothing"),),
    ),
    Route("DELETE", J, delete_job, "Delete a job (If-Match or version)", response="Deleted"),
    Route(
        "POST",
        J + "/pause",
        _set_state(JobState.PAUSED),
        "Pause a job: it matches no events until resumed",
        response="Job",
    ),
    Route("POST", J + "/resume", _set_state(JobState.ACTIVE), "Resume a paused job", response="Job"),
    Route(
        "POST",
        J + "/preview",
        preview_job,
        "Render the job's template against a given or sample event (422 with line and column on error)",
        body="PreviewInput",
        response="Preview",
    ),
    Route(
        "POST",
        J + "/test",
        test_job,
        "Send a test event through the real pipeline to this job only",
        body="TestInput",
        ok=202,
        response="TestSent",
    ),
    Route(
        "GET",
        J + "/deliveries",
        job_deliveries,
        "The job's webhook attempt log (newest first) and dead-lettered deliveries",
        response="Deliveries",
        query=(("page_size", "1-200, default 50"), ("before", "attempts before this time (next_before)")),
    ),
    Route("GET", J + "/stats", job_stats, "The job's delivery counters (they reconcile)", response="Stats"),
    Route(
        "POST",
        J + "/replay",
        replay_job,
        "Re-deliver the job's dead-lettered deliveries (all or since a time; current or chosen template)",
        body="ReplayInput",
        ok=202,
        response="Replayed",
    ),
)

URL_MAP = Map(
    [Rule(r.path, endpoint=i, methods=[r.method]) for i, r in enumerate(ROUTES)], strict_slashes=False
)

_keys: dict[int, KeyStore] = {}
_lock = threading.Lock()


def _key_store(rt: Runtime) -> KeyStore:
    with _lock:
        if id(rt) not in _keys:
            s = rt.settings
            _keys[id(rt)] = KeyStore(
                rt.firestore, s.accounts_collection, s.api_keys_collection, s.operator_key_hash
            )
        return _keys[id(rt)]


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


def dispatch(request: Request, rt: Runtime | None = None) -> Response:
    rt = rt or runtime()
    try:
        try:
            index_, args = URL_MAP.bind_to_environ(request.environ).match()
        except NotFound:
            raise ApiError(404, f"no route {request.method} {request.path}; see /openapi.json") from None
        except MethodNotAllowed as err:
            allowed = ", ".join(sorted(err.valid_methods or ()))
            raise ApiError(
                405, f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
            ) from None
        route = ROUTES[index_]
        keys = _key_store(rt)
        principal = _authorize(route, args, keys, request)
        body = _body(route, request, rt) if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
        return route.handler(Call(request, rt, keys, principal, body), **args)
    except ApiError as err:
        return err.response()
    except JobNotFound as err:
        return ApiError(404, str(err), "job_id").response()
    except VersionConflict as err:
        return ApiError(409, str(err), "version").response()
    except SealingError as err:
        log.error("admin: %s", err)
        return ApiError(500, f"server configuration: {err}").response()
