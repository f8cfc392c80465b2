"""Cloud Function entry point: bigquery (the bigquery sink, sysevents.sinks.bigquery, through the delivery
envelope; POST /tick advances due backfills, sysevents.backfill.ticks)."""

import functions_framework

from sysevents.backfill.ticks import tick
from sysevents.entry import serve
from sysevents.sinks.bigquery.sink import BigQuerySink


@functions_framework.http
def handle(request):
    return serve(request, BigQuerySink, routes={"/tick": tick})
