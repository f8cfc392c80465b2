"""Cloud Function entry point: email (logic in sysevents.functions.email)."""

import functions_framework

from sysevents.functions import email


@functions_framework.http
def handle(request):
    return email.handle(request)
