# Log-based metrics over the functions' structured log lines (shared/sysevents/obs/logs.py). Each line that
# matters has its payload under jsonPayload.sysevents, whose `kind` says what it is about: "delivery" (one
# line per delivery outcome), "ingest" (one per event fanned out), "quarantine" (one per invalid event).
# Why log-based metrics, what they cost and how many time series they make: docs/monitoring.md.

locals {
  # Cloud Functions (2nd gen) run as Cloud Run services: their log entries are cloud_run_revision ones.
  function_services = { for k in keys(local.functions) : k => "${var.name}-${k}" }

  sysevents_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=~\"^(${join("|", sort(values(local.function_services)))})$\"",
  ])

  delivery_logs = "${local.sysevents_logs} AND jsonPayload.sysevents.kind=\"delivery\""

  sink_label = {
    sink = { extractor = "EXTRACT(jsonPayload.sysevents.sink)", description = "Sink (topology.json sinks): webhook, email, bigquery." }
  }
  outcome_label = {
    outcome = { extractor = "EXTRACT(jsonPayload.sysevents.outcome)", description = "delivered, accepted, filtered, retry, dead_lettered or waiting." }
  }
  # The job's identity: the cardinality of the delivery metrics (var.metrics_per_job_labels).
  job_label_definitions = {
    aid    = { extractor = "EXTRACT(jsonPayload.sysevents.aid)", description = "Account of the job." }
    job_id = { extractor = "EXTRACT(jsonPayload.sysevents.job_id)", description = "The job (with aid, its identity)." }
  }
  job_labels = { for k, v in local.job_label_definitions : k => v if var.metrics_per_job_labels }

  no_buckets = { exponential = null, explicit = null }

  # Metric => definition. Metric type: logging.googleapis.com/user/<var.name>/<metric>.
  log_metrics = {
    deliveries = {
      display_name    = "sysevents deliveries"
      description     = "Delivery outcomes (one per delivery attempt's end: delivered, accepted, filtered, retry, dead_lettered, waiting), by sink and outcome, and by job unless metrics_per_job_labels is false."
      filter          = local.delivery_logs
      value_type      = "INT64"
      unit            = "1"
      value_extractor = null
      labels          = merge(local.sink_label, local.outcome_label, local.job_labels)
      buckets         = local.no_buckets
    }
    delivery_latency = {
      display_name    = "sysevents delivery latency"
      description     = "Time the sink spent on one delivery attempt (the receiver's answer, the SMTP exchange, the BigQuery insert), in milliseconds, by sink and outcome."
      filter          = "${local.delivery_logs} AND jsonPayload.sysevents.latency_ms:*"
      value_type      = "DISTRIBUTION"
      unit            = "ms"
      value_extractor = "EXTRACT(jsonPayload.sysevents.latency_ms)"
      labels          = merge(local.sink_label, local.outcome_label)
      # 1 ms to about 17 minutes, doubling.
      buckets = { exponential = { num_finite_buckets = 20, growth_factor = 2, scale = 1 }, explicit = null }
    }
    retries = {
      display_name    = "sysevents retries and waits"
      description     = "Deliveries that will be tried again: retry (a failed attempt, redelivered after delay_s) and waiting (held without an attempt, e.g. a receiver's Retry-After), by sink and outcome, and by job unless metrics_per_job_labels is false."
      filter          = "${local.delivery_logs} AND (jsonPayload.sysevents.outcome=\"retry\" OR jsonPayload.sysevents.outcome=\"waiting\")"
      value_type      = "INT64"
      unit            = "1"
      value_extractor = null
      labels          = merge(local.sink_label, local.outcome_label, local.job_labels)
      buckets         = local.no_buckets
    }
    dead_lettered = {
      display_name    = "sysevents dead-lettered deliveries"
      description     = "Deliveries that failed for good and went to their sink's dead-letter topic (and the job's dead-letter list), by sink, and by job unless metrics_per_job_labels is false."
      filter          = "${local.delivery_logs} AND jsonPayload.sysevents.outcome=\"dead_lettered\""
      value_type      = "INT64"
      unit            = "1"
      value_extractor = null
      labels          = merge(local.sink_label, local.job_labels)
      buckets         = local.no_buckets
    }
    quarantined = {
      display_name    = "sysevents quarantined events"
      description     = "Invalid events the ingest function put on the quarantine topic (jsonPayload.sysevents.reason says why; not a label: reasons are free text)."
      filter          = "${local.sysevents_logs} AND jsonPayload.sysevents.kind=\"quarantine\""
      value_type      = "INT64"
      unit            = "1"
      value_extractor = null
      labels          = {}
      buckets         = local.no_buckets
    }
    ingest_fanout = {
      display_name    = "sysevents ingest fan-out"
      description     = "Jobs each valid event matched (deliveries the ingest function published for it): 0 means no job wanted the event."
      filter          = "${local.sysevents_logs} AND jsonPayload.sysevents.kind=\"ingest\" AND jsonPayload.sysevents.matched:*"
      value_type      = "DISTRIBUTION"
      unit            = "1"
      value_extractor = "EXTRACT(jsonPayload.sysevents.matched)"
      labels          = {}
      # Underflow bucket: 0 jobs; then 1, 2, 3-4, 5-9, ... 1000 and more.
      buckets = { exponential = null, explicit = [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000] }
    }
  }

  metric_types = { for k in keys(local.log_metrics) : k => "logging.googleapis.com/user/${var.name}/${k}" }
}

# A log-based metric's labels can be added but never removed: when a metric's label set changes (e.g.
# metrics_per_job_labels set to false), the metric is replaced (its history restarts) instead.
resource "terraform_data" "metric_labels" {
  for_each = local.log_metrics

  input = sort(keys(each.value.labels))
}

resource "google_logging_metric" "metric" {
  for_each = local.log_metrics

  name        = "${var.name}/${each.key}"
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = each.value.value_type
    unit         = each.value.unit
    display_name = each.value.display_name

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = labels.value.description
      }
    }
  }

  value_extractor  = each.value.value_extractor
  label_extractors = { for k, l in each.value.labels : k => l.extractor }

  dynamic "bucket_options" {
    for_each = each.value.value_type == "DISTRIBUTION" ? [each.value.buckets] : []
    content {
      dynamic "exponential_buckets" {
        for_each = bucket_options.value.exponential == null ? [] : [bucket_options.value.exponential]
        content {
          num_finite_buckets = exponential_buckets.value.num_finite_buckets
          growth_factor      = exponential_buckets.value.growth_factor
          scale              = exponential_buckets.value.scale
        }
      }
      dynamic "explicit_buckets" {
        for_each = bucket_options.value.explicit == null ? [] : [bucket_options.value.explicit]
        content {
          bounds = explicit_buckets.value
        }
      }
    }
  }

  lifecycle {
    replace_triggered_by = [terraform_data.metric_labels[each.key]]
  }

  depends_on = [google_project_service.apis]
}
