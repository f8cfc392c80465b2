"""HTTP entry points of the push functions: `functions/<name>/main.py` calls `serve(request, SinkClass)`.

GET answers the health check (which function this is, and its job cache's freshness); POST to one of the
sink's own routes (`/flush`, `/tick`) runs it; POST /dead-letters (pushed from the sink's dead-letter topic)
lists what Pub/Sub dead-lettered itself in the job's dead letters (sysevents.delivery.recorder); any other POST is a Pub/Sub push, run through the envelope.
"""

from __future__ import annotations

import json
from typing import Any

from sysevents.delivery import recorder
from sysevents.delivery.envelope import Envelope
from sysevents.delivery.sink import Sink
from sysevents.runtime import Runtime, health, instance

RECORDER_PATH = "/dead-letters"


def sink_of(rt: Runtime, sink_class: type[Sink]) -> Sink:
    """The instance's one sink object of this class (it keeps per-instance state such as holds)."""
    return rt._part(f"sink:{sink_class.__name__}", lambda: sink_class(rt))


def serve(request: Any, sink_class: type[Sink], rt: Runtime | None = None):
    rt = rt or instance()
    sink = sink_of(rt, sink_class)
    if request.method != "POST":
        if not sink.per_job:
            meter = {"meter": rt.meter.snapshot()} if rt.meter is not None else {}
            return {"function": sink.function, **meter}, 200
        return health(rt, sink.function)
    if rt.meter is None:
        return _post(request, sink, rt)
    scheduled = (request.path.rstrip("/") or "/") in sink.routes()  # Cloud Scheduler's, not a push
    with rt.meter.request(request.get_data(), kind="scheduled" if scheduled else "pushes"):
        return _post(request, sink, rt)


def _post(request: Any, sink: Sink, rt: Runtime):
    path = request.path.rstrip("/") or "/"
    if path == RECORDER_PATH and sink.per_job:  # fed by the sink's dead-letter topic (the crash guard)
        return recorder.record(rt, sink, request.get_data())
    route = sink.routes().get(path)
    if route is not None:
        result = route(request)
        if isinstance(result, dict):
            return json.dumps(result), 200, {"Content-Type": "application/json"}
        return result
    return Envelope(rt, sink).push(request.get_data())
