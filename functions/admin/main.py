"""Cloud Function entry point: admin (logic in sysevents.admin)."""

import functions_framework

from sysevents import admin


@functions_framework.http
def handle(request):
    return admin.handle(request)
