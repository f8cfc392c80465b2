"""Cloud Function entry point: audit (the audit sink, sysevents.sinks.audit, through the delivery envelope)."""

import functions_framework

from sysevents.entry import serve
from sysevents.sinks.audit.sink import AuditSink


@functions_framework.http
def handle(request):
    return serve(request, AuditSink)
