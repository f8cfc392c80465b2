"""HTTP entry points of the push functions: `functions/<name>/main.py` calls `serve(request, SinkClass)`.

GET answers the health check (which function this is, and its job cache's freshness); POST to one of the
sink's own routes (`/flush`, `/tick`) runs it; POST /dead-letters (pushed from the sink's dead-letter topic)
lists what Pub/Sub dead-lettered itself in the job's dead letters (sysevents.delivery.recorder); any other POST is a Pub/Sub push, run through the envelope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sysevents.delivery import recorder
from sysevents.delivery.envelope import Envelope
from sysevents.delivery.sink import Sink
from sysevents.runtime import Runtime, health, instance
from sysevents.sinks import registry

RECORDER_PATH = "/dead-letters"
Routes = dict[str, Callable[[Any], Any]]


def serve(
    request: Any,
    sink_class: type[Sink],
    rt: Runtime | None = None,
    routes: dict[str, Callable[[Runtime], Any]] | None = None,
):
    """One request to a sink's function. `routes` adds POST routes of the function's own, each called with
    the Runtime (the bigquery function's /tick), to the sink's."""
    rt = rt or instance()
    sink = registry.sink(rt, sink_class.name)
    routes = {**sink.routes(), **{path: _with(rt, run) for path, run in (routes or {}).items()}}
    if request.method != "POST":
        if not sink.per_job:
            meter = {"meter": rt.meter.snapshot()} if rt.meter is not None else {}
            return {"function": sink.function, **meter}, 200
        return health(rt, sink.function)
    if rt.meter is None:
        return _post(request, sink, rt, routes)
    scheduled = (request.path.rstrip("/") or "/") in routes  # Cloud Scheduler's, not a push
    with rt.meter.request(request.get_data(), kind="scheduled" if scheduled else "pushes"):
        return _post(request, sink, rt, routes)


def _with(rt: Runtime, run: Callable[[Runtime], Any]) -> Callable[[Any], Any]:
    return lambda request: run(rt)


def _post(request: Any, sink: Sink, rt: Runtime, routes: Routes):
    path = request.path.rstrip("/") or "/"
    if path == RECORDER_PATH and sink.per_job:  # fed by the sink's dead-letter topic (the crash guard)
        return recorder.record(rt, sink, request.get_data())
    route = routes.get(path)
    if route is not None:
        result = route(request)
        if isinstance(result, dict):
            return json.dumps(result), 200, {"Content-Type": "application/json"}
        return result
    return Envelope(rt, sink).push(request.get_data())
