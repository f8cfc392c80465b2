"""The admin API: the route table, each route a small handler in the module of its resource (accounts,
jobs, deliveries, audit). Routing is werkzeug's; the table also generates the OpenAPI document
(sysevents.admin.openapi), so the two cannot drift apart. The machinery (authentication, errors,
dispatch) is in sysevents.admin.http.
"""

from __future__ import annotations

from flask import Request, Response
from werkzeug.routing import Map, Rule

from sysevents.admin import accounts, audit, consent, deliveries, filters, jobs
from sysevents.admin.errors import json_response
from sysevents.admin.http import Call, Route
from sysevents.admin.http import dispatch as _dispatch
from sysevents.jobs.model import JobState
from sysevents.runtime import Runtime, instance


def index(call: Call) -> Response:
    return json_response({"function": "admin", "service": "sysevents admin API", "openapi": "/openapi.json"})


def openapi_doc(call: Call) -> Response:
    from sysevents.admin.openapi import document

    return json_response(document(ROUTES))


def console_page(call: Call, asset: str = "index.html") -> Response:
    """The web console's static files (sysevents/admin/console); it talks only to this API."""
    from sysevents.admin.console import serve

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
        jobs.preview_template,
        "Render a Jsonnet template against a given or sample event, before saving a job (422 on error)",
        body="PreviewInput",
        response="Preview",
    ),
    Route(
        "POST",
        "/accounts/<aid>/filters/validate",
        filters.validate_filter,
        "Check a content filter and exclusions, optionally against an event, before saving a job (422 with "
        "line and column on error)",
        body="FilterInput",
        response="FilterCheck",
    ),
    Route(
        "GET",
        "/whoami",
        accounts.whoami,
        "The caller's key: operator or account, prefix, name",
        auth="any",
        scope="read",
        response="Principal",
    ),
    Route(
        "POST",
        "/accounts",
        accounts.create_account,
        "Create an account (operator)",
        auth="operator",
        body="AccountInput",
        ok=201,
        response="Account",
    ),
    Route(
        "GET",
        "/accounts",
        accounts.list_accounts,
        "List accounts (operator)",
        auth="operator",
        response="AccountList",
        query=(("page_size", "1-200, default 50"), ("page_token", "next_page_token of the previous page")),
    ),
    Route(
        "POST",
        "/accounts/<aid>/keys",
        accounts.create_key,
        "Create an API key for the account (scope admin, jobs or read; optional expiry); the key is shown once",
        body="KeyInput",
        scope="admin",
        ok=201,
        response="NewKey",
    ),
    Route(
        "GET",
        "/accounts/<aid>/keys",
        accounts.list_keys,
        "List the account's keys by prefix, with their expiry and state",
        response="KeyList",
        scope="admin",
    ),
    Route(
        "DELETE",
        "/accounts/<aid>/keys/<prefix>",
        accounts.revoke_key,
        "Revoke a key by its prefix, and every key minted from it",
        response="Key",
        scope="admin",
    ),
    Route(
        "GET",
        "/consent/<token>",
        consent.show_consent,
        "The page of an email consent link (confirm or unsubscribe): what it is for, with one button",
        auth="none",
    ),
    Route(
        "POST",
        "/consent/<token>",
        consent.apply_consent,
        "Use an email consent link: confirm the address, or unsubscribe it (also RFC 8058 one-click)",
        auth="none",
        form=True,
    ),
    Route(
        "GET",
        "/accounts/<aid>/email-policy",
        consent.get_email_policy,
        "The account's email policy: domains needing no confirmation, daily email quota",
        response="EmailPolicy",
        scope="read",
    ),
    Route(
        "PUT",
        "/email-policies",
        consent.put_email_policy,
        "Set an account's email policy (operator; the account is the body's aid): allowed_domains, "
        "daily_quota (null: the default)",
        auth="operator",
        body="EmailPolicy",
        response="EmailPolicy",
    ),
    Route(
        "GET",
        "/accounts/<aid>/jobs",
        jobs.list_jobs,
        "List jobs, paginated, filtered by workflow and state",
        response="JobList",
        scope="read",
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
        jobs.create_job,
        "Create a job (dry_run=true: validate only)",
        body="JobInput",
        ok=201,
        response="Job",
        query=(("dry_run", "validate only, store nothing"),),
    ),
    Route(
        "GET",
        "/accounts/<aid>/audit",
        audit.search_audit,
        "Search the account's audit log (newest first, paginated)",
        response="AuditPage",
        scope="read",
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
    Route(
        "GET",
        "/quarantine",
        audit.list_quarantine,
        "Events ingest refused, newest first, each with its reason (operator)",
        auth="operator",
        response="Quarantine",
        query=(
            ("aid", "only events naming this account"),
            ("page_size", "1-200, default 50"),
            ("before", "events quarantined before this time (next_before)"),
        ),
    ),
    Route("GET", J, jobs.get_job, "Get a job (ETag: its version)", response="Job", scope="read"),
    Route(
        "PUT",
        J,
        jobs.replace_job,
        "Replace a job (If-Match or version: refused with 409 when stale)",
        body="JobInput",
        response="Job",
        query=(("dry_run", "validate only, store nothing"),),
    ),
    Route(
        "PATCH",
        J,
        jobs.patch_job,
        "Change part of a job (JSON merge patch; If-Match or version)",
        body="JobPatch",
        response="Job",
        query=(("dry_run", "validate only, store nothing"),),
    ),
    Route("DELETE", J, jobs.delete_job, "Delete a job (If-Match or version)", response="Deleted"),
    Route(
        "POST",
        J + "/pause",
        jobs.set_state(JobState.PAUSED),
        "Pause a job: it matches no events until resumed",
        response="Job",
    ),
    Route(
        "POST",
        J + "/resume",
        jobs.resume_job,
        "Resume a paused job; with replay, re-deliver what was dead-lettered while it was paused",
        body="ResumeInput",
        response="Job",
    ),
    Route(
        "POST",
        J + "/preview",
        jobs.preview_job,
        "Render the job's template against a given or sample event (422 with line and column on error)",
        body="PreviewInput",
        response="Preview",
    ),
    Route(
        "POST",
        J + "/test",
        jobs.test_job,
        "Send a test event through the real pipeline to this job only",
        body="TestInput",
        ok=202,
        response="TestSent",
    ),
    Route(
        "GET",
        J + "/deliveries",
        deliveries.job_deliveries,
        "The job's webhook attempt log (newest first) and dead-lettered deliveries",
        response="Deliveries",
        scope="read",
        query=(("page_size", "1-200, default 50"), ("before", "attempts before this time (next_before)")),
    ),
    Route(
        "GET",
        J + "/stats",
        deliveries.job_stats,
        "The job's delivery counters (they reconcile)",
        response="Stats",
        scope="read",
    ),
    Route(
        "POST",
        J + "/replay",
        deliveries.replay_job,
        "Re-deliver the job's dead-lettered deliveries (all or since a time; current or chosen template)",
        body="ReplayInput",
        ok=202,
        response="Replayed",
    ),
)

URL_MAP = Map(
    [Rule(r.path, endpoint=i, methods=[r.method]) for i, r in enumerate(ROUTES)], strict_slashes=False
)


def dispatch(request: Request, rt: Runtime | None = None) -> Response:
    return _dispatch(request, ROUTES, URL_MAP, rt or instance())
