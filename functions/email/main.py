"""Cloud Function entry point: email (the email sink, sysevents.sinks.email, through the delivery envelope)."""

import functions_framework

from sysevents.entry import serve
from sysevents.sinks.email.sink import EmailSink


@functions_framework.http
def handle(request):
    return serve(request, EmailSink)
