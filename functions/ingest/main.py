"""Cloud Function entry point: ingest (logic in sysevents.ingest)."""

import functions_framework

from sysevents import ingest


@functions_framework.http
def handle(request):
    return ingest.handle(request)
