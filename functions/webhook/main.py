"""Cloud Function entry point: webhook (the webhook sink, sysevents.sinks.webhook, through the delivery envelope)."""

import functions_framework

from sysevents.entry import serve
from sysevents.sinks.webhook.sink import WebhookSink


@functions_framework.http
def handle(request):
    return serve(request, WebhookSink)
