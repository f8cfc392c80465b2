# One Cloud Monitoring dashboard: the log-based metrics of logging_metrics.tf (deliveries, latency,
# retries, dead letters, quarantine, fan-out), Cloud Run's requests of the functions and Pub/Sub's backlog
# of every topology.json subscription. What each chart means: docs/monitoring.md.

locals {
  on_functions = "resource.type=\"cloud_run_revision\""

  # Chart => data sets. A data set is one filter, aligned per series (aligner) then reduced across series
  # (reducer, group_by); top > 0 keeps only the top series.
  dashboard_charts = concat(
    [
      {
        title  = "Deliveries by outcome (per second)"
        y_axis = "deliveries/s"
        data = [{
          filter   = "metric.type=\"${local.metric_types.deliveries}\" ${local.on_functions}"
          aligner  = "ALIGN_RATE"
          reducer  = "REDUCE_SUM"
          group_by = ["metric.label.outcome"]
          plot     = "STACKED_BAR"
          legend   = "$${metric.labels.outcome}"
          top      = 0
        }]
      },
      {
        title  = "Deliveries by sink and outcome (per second)"
        y_axis = "deliveries/s"
        data = [{
          filter   = "metric.type=\"${local.metric_types.deliveries}\" ${local.on_functions}"
          aligner  = "ALIGN_RATE"
          reducer  = "REDUCE_SUM"
          group_by = ["metric.label.sink", "metric.label.outcome"]
          plot     = "LINE"
          legend   = "$${metric.labels.sink} $${metric.labels.outcome}"
          top      = 0
        }]
      },
      {
        title  = "Delivery latency by sink (p50, p95, p99)"
        y_axis = "ms"
        data = [for p in [50, 95, 99] : {
          filter   = "metric.type=\"${local.metric_types.delivery_latency}\" ${local.on_functions}"
          aligner  = "ALIGN_DELTA"
          reducer  = "REDUCE_PERCENTILE_${p}"
          group_by = ["metric.label.sink"]
          plot     = "LINE"
          legend   = "p${p} $${metric.labels.sink}"
          top      = 0
        }]
      },
      {
        title  = "Retries scheduled and deliveries waiting (per second)"
        y_axis = "deliveries/s"
        data = [{
          filter   = "metric.type=\"${local.metric_types.retries}\" ${local.on_functions}"
          aligner  = "ALIGN_RATE"
          reducer  = "REDUCE_SUM"
          group_by = ["metric.label.sink", "metric.label.outcome"]
          plot     = "LINE"
          legend   = "$${metric.labels.sink} $${metric.labels.outcome}"
          top      = 0
        }]
      },
      {
        title  = "Dead-lettered deliveries by sink (per minute)"
        y_axis = "dead letters/min"
        data = [{
          filter   = "metric.type=\"${local.metric_types.dead_lettered}\" ${local.on_functions}"
          aligner  = "ALIGN_DELTA"
          reducer  = "REDUCE_SUM"
          group_by = ["metric.label.sink"]
          plot     = "STACKED_BAR"
          legend   = "$${metric.labels.sink}"
          top      = 0
        }]
      },
    ],
    # With the job labels: the jobs that fail the most.
    var.metrics_per_job_labels ? [
      {
        title  = "Top 10 jobs by dead letters"
        y_axis = "dead letters/min"
        data = [{
          filter   = "metric.type=\"${local.metric_types.dead_lettered}\" ${local.on_functions}"
          aligner  = "ALIGN_DELTA"
          reducer  = "REDUCE_SUM"
          group_by = ["metric.label.sink", "metric.label.aid", "metric.label.job_id"]
          plot     = "LINE"
          legend   = "$${metric.labels.sink} $${metric.labels.aid}/$${metric.labels.job_id}"
          top      = 10
        }]
      },
      {
        title  = "Top 10 jobs by retries"
        y_axis = "retries/min"
        data = [{
          filter   = "metric.type=\"${local.metric_types.retries}\" ${local.on_functions} metric.label.outcome=\"retry\""
          aligner  = "ALIGN_DELTA"
          reducer  = "REDUCE_SUM"
          group_by = ["metric.label.sink", "metric.label.aid", "metric.label.job_id"]
          plot     = "LINE"
          legend   = "$${metric.labels.sink} $${metric.labels.aid}/$${metric.labels.job_id}"
          top      = 10
        }]
      },
    ] : [],
    [
      {
        title  = "Quarantined events (per minute)"
        y_axis = "events/min"
        data = [{
          filter   = "metric.type=\"${local.metric_types.quarantined}\" ${local.on_functions}"
          aligner  = "ALIGN_DELTA"
          reducer  = "REDUCE_SUM"
          group_by = []
          plot     = "STACKED_BAR"
          legend   = "quarantined"
          top      = 0
        }]
      },
      {
        title  = "Ingest fan-out: jobs matched per event"
        y_axis = "jobs"
        data = [{
          filter   = "metric.type=\"${local.metric_types.ingest_fanout}\" ${local.on_functions}"
          aligner  = "ALIGN_DELTA"
          reducer  = "REDUCE_SUM"
          group_by = []
          plot     = "HEATMAP"
          legend   = "matched"
          top      = 0
        }]
      },
      {
        title  = "Function requests by response class (per second)"
        y_axis = "requests/s"
        data = [{
          filter   = local.function_requests
          aligner  = "ALIGN_RATE"
          reducer  = "REDUCE_SUM"
          group_by = ["resource.label.service_name", "metric.label.response_code_class"]
          plot     = "LINE"
          legend   = "$${resource.labels.service_name} $${metric.labels.response_code_class}"
          top      = 0
        }]
      },
      {
        title  = "Function 5xx answers by code (per second; 503 is a redelivery on purpose)"
        y_axis = "requests/s"
        data = [{
          filter   = "${local.function_requests} AND metric.labels.response_code_class = \"5xx\""
          aligner  = "ALIGN_RATE"
          reducer  = "REDUCE_SUM"
          group_by = ["resource.label.service_name", "metric.label.response_code"]
          plot     = "STACKED_BAR"
          legend   = "$${resource.labels.service_name} $${metric.labels.response_code}"
          top      = 0
        }]
      },
      {
        title  = "Oldest unacked message age by subscription"
        y_axis = "seconds"
        data = [{
          filter = join(" ", [
            "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\"",
            "resource.type=\"pubsub_subscription\"",
            "resource.label.subscription_id=one_of(${join(",", [for s in sort(keys(local.subscriptions)) : "\"${s}\""])})",
          ])
          aligner  = "ALIGN_MAX"
          reducer  = "REDUCE_MAX"
          group_by = ["resource.label.subscription_id"]
          plot     = "LINE"
          legend   = "$${resource.labels.subscription_id}"
          top      = 0
        }]
      },
      {
        title  = "Messages waiting on hold subscriptions (dead letters, quarantine)"
        y_axis = "messages"
        data = [{
          filter = join(" ", [
            "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
            "resource.type=\"pubsub_subscription\"",
            "resource.label.subscription_id=one_of(${join(",", [for s in sort(keys(module.topology.hold_subscriptions)) : "\"${s}\""])})",
          ])
          aligner  = "ALIGN_MAX"
          reducer  = "REDUCE_MAX"
          group_by = ["resource.label.subscription_id"]
          plot     = "STACKED_BAR"
          legend   = "$${resource.labels.subscription_id}"
          top      = 0
        }]
      },
    ],
  )

  dashboard_header = <<-EOT
    **sysevents (${var.name})**: what each chart means and the alerts: docs/monitoring.md in the repository.
    One delivery's log lines, in Logs Explorer: `jsonPayload.sysevents.kind="delivery" labels.job_id="<job>" labels.event_id="<event>"`;
    everything one event did, across functions: `trace="projects/${var.project_id}/traces/<trace id>"`.
  EOT

  dashboard_tiles = concat(
    [{
      xPos   = 0, yPos = 0, width = 48, height = 6
      widget = { title = "How to read this dashboard", text = { content = local.dashboard_header, format = "MARKDOWN" } }
    }],
    [for i, c in local.dashboard_charts : {
      xPos = (i % 2) * 24, yPos = 6 + floor(i / 2) * 16, width = 24, height = 16
      widget = {
        title = c.title
        xyChart = {
          chartOptions = { mode = "COLOR" }
          yAxis        = { label = c.y_axis, scale = "LINEAR" }
          dataSets = [for d in c.data : {
            plotType           = d.plot
            legendTemplate     = d.legend
            minAlignmentPeriod = "60s"
            targetAxis         = "Y1"
            timeSeriesQuery = {
              timeSeriesFilter = merge(
                {
                  filter = d.filter
                  aggregation = merge(
                    { alignmentPeriod = "60s", perSeriesAligner = d.aligner, crossSeriesReducer = d.reducer },
                    { for k, v in { groupByFields = d.group_by } : k => v if length(v) > 0 },
                  )
                },
                { for k, v in { pickTimeSeriesFilter = { rankingMethod = "METHOD_MEAN", numTimeSeries = d.top, direction = "TOP" } } : k => v if d.top > 0 },
              )
            }
          }]
        }
      }
    }],
  )

  dashboard_json = jsonencode({
    displayName  = "${var.name}: deliveries, ingest and backlog"
    mosaicLayout = { columns = 48, tiles = local.dashboard_tiles }
  })
}

resource "google_monitoring_dashboard" "sysevents" {
  dashboard_json = local.dashboard_json

  depends_on = [google_project_service.apis, google_logging_metric.metric]
}
