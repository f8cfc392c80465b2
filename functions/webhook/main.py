"""Cloud Function entry point: webhook (logic in sysevents.functions.webhook)."""

import functions_framework

from sysevents.functions import webhook


@functions_framework.http
def handle(request):
    return webhook.handle(request)
