"""Cloud Function entry point: ingest (logic in sysevents.functions.ingest)."""

import functions_framework

from sysevents.functions import ingest


@functions_framework.http
def handle(request):
    return ingest.handle(request)
