"""Cloud Function entry point: audit (logic in sysevents.functions.audit)."""

import functions_framework

from sysevents.functions import audit


@functions_framework.http
def handle(request):
    return audit.handle(request)
