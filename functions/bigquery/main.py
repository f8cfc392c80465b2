"""Cloud Function entry point: bigquery (logic in sysevents.functions.bigquery)."""

import functions_framework

from sysevents.functions import bigquery


@functions_framework.http
def handle(request):
    return bigquery.handle(request)
