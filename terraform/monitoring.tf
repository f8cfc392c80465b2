# Alert policies, notified to var.alert_emails and var.alert_notification_channels (docs/monitoring.md).
#
# Alert when messages pile up on a dead-letter topic: those events or deliveries failed for good and
# wait in the topic's hold subscription for someone to look at them.

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  display_name = "sysevents alerts (${each.key})"
  type         = "email"
  labels       = { email_address = each.key }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  display_name = "${var.name}: dead-letter backlog"
  combiner     = "OR"
  enabled      = true

  conditions {
    display_name = "Undelivered messages on a dead-letter hold subscription"

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"pubsub_subscription\"",
        "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
        "resource.labels.subscription_id = one_of(${join(", ", [for s in sort(keys(module.topology.dead_letter_holds)) : "\"${s}\""])})",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.dead_letter_alert_threshold
      duration        = "${var.dead_letter_alert_duration_seconds}s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channels

  alert_strategy {
    auto_close = "604800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Messages are waiting on a sysevents dead-letter subscription ($${resource.label.subscription_id}).
      Each carries a `reason` attribute. Look at them without consuming them:

          gcloud pubsub subscriptions pull $${resource.label.subscription_id} --limit=10 --format=json

      Fix the cause (a webhook that keeps refusing, a bad job, a BigQuery permission), then replay or ack them.
    EOT
  }

  depends_on = [google_pubsub_subscription.hold]
}

# What every alert policy below watches, and where its thresholds come from: docs/monitoring.md. The
# delivery and quarantine alerts read the log-based metrics of logging_metrics.tf; the function error and
# oldest-unacked alerts read Cloud Run's and Pub/Sub's own metrics.

locals {
  alert_channels = concat([for c in google_monitoring_notification_channel.email : c.id], var.alert_notification_channels)

  # The success-rate alert is per job when the delivery metrics carry the job, else per sink.
  delivery_group_by = concat(["metric.label.sink"], var.metrics_per_job_labels ? ["metric.label.aid", "metric.label.job_id"] : [])

  # Every subscription topology.json declares, with its oldest-unacked threshold: push subscriptions
  # (they feed a function) and hold subscriptions (dead letters, quarantine: kept until someone reads them,
  # at most message_retention_seconds) have their own default.
  subscriptions = merge(module.topology.push_subscriptions, module.topology.hold_subscriptions)
  oldest_unacked_thresholds = {
    for k, s in local.subscriptions : k => lookup(
      var.oldest_unacked_alert_seconds_by_subscription, k,
      s.push_function != null ? var.oldest_unacked_alert_seconds : var.oldest_unacked_hold_alert_seconds,
    )
  }

  # Where quarantined events wait (the hold subscriptions of the quarantine topic).
  quarantine_holds = sort([for k, s in module.topology.hold_subscriptions : k if s.topic == module.topology.quarantine_topic])

  function_requests = join(" AND ", [
    "resource.type = \"cloud_run_revision\"",
    "metric.type = \"run.googleapis.com/request_count\"",
    "resource.labels.service_name = one_of(${join(", ", [for s in sort(values(local.function_services)) : "\"${s}\""])})",
  ])
  function_errors = join(" AND ", concat(
    [local.function_requests, "metric.labels.response_code_class = \"5xx\""],
    [for c in var.function_error_ignored_response_codes : "metric.labels.response_code != \"${c}\""],
  ))
}

# The alerts' condition names and documentation (Markdown; ${...} are Monitoring's documentation
# variables, filled in per incident), computed here so that the tests render them offline.
locals {
  alert_text = {
    delivery_success_rate = {
      condition     = "Delivery success rate below ${format("%.4g", var.delivery_success_rate_threshold * 100)}% over ${var.delivery_success_rate_window_seconds / 60} min (per ${var.metrics_per_job_labels ? "job" : "sink"})"
      documentation = <<-EOT
        More than ${format("%.4g", (1 - var.delivery_success_rate_threshold) * 100)}% of the deliveries ${var.metrics_per_job_labels ? "of job $${metric.label.aid}/$${metric.label.job_id}" : "of the $${metric.label.sink} sink"} were dead-lettered over the last ${var.delivery_success_rate_window_seconds / 60} minutes.

        Why: the reasons are in the delivery log lines (Logs Explorer):

            jsonPayload.sysevents.kind="delivery"
            jsonPayload.sysevents.outcome="dead_lettered"
            ${var.metrics_per_job_labels ? "labels.aid=\"$${metric.label.aid}\" labels.job_id=\"$${metric.label.job_id}\"" : "labels.sink=\"$${metric.label.sink}\""}

        and the messages wait on the sink's dead-letter hold subscription with a `reason` attribute. Fix the
        receiver or the job, then replay the job's dead letters (admin API:
        `POST /accounts/{aid}/jobs/{id}/replay`, or the web console). docs/monitoring.md explains the metric.
        EOT
    }
    quarantine_spike = {
      condition     = "More than ${var.quarantine_alert_threshold} events quarantined in ${var.quarantine_alert_window_seconds / 60} min"
      documentation = <<-EOT
        The ingest function quarantined more than ${var.quarantine_alert_threshold} events in ${var.quarantine_alert_window_seconds / 60} minutes.
        Quarantined events are invalid (not JSON, not a system event, a field out of bounds) and never
        retried. See why (Logs Explorer):

            jsonPayload.sysevents.kind="quarantine"

        and look at the events themselves without consuming them:

            gcloud pubsub subscriptions pull ${join(" (or) ", local.quarantine_holds)} --limit=10 --format=json

        Tell the producer (its `aid` is in the log lines when the event had one).
        EOT
    }
    function_error_rate = {
      condition     = "More than ${format("%.4g", var.function_error_rate_threshold * 100)}% of a function's requests answered 5xx over ${var.function_error_rate_window_seconds / 60} min"
      documentation = <<-EOT
        Function $${resource.label.service_name} answered 5xx to more than ${format("%.4g", var.function_error_rate_threshold * 100)}% of its requests over ${var.function_error_rate_window_seconds / 60} minutes${length(var.function_error_ignored_response_codes) > 0 ? " (not counting ${join(", ", var.function_error_ignored_response_codes)}: redelivery on purpose)" : ""}.
        A crash or an unhandled exception answers 500; Error Reporting groups their tracebacks. The errors
        (Logs Explorer):

            resource.type="cloud_run_revision"
            resource.labels.service_name="$${resource.label.service_name}"
            severity>=ERROR

        Pub/Sub redelivers what failed, so nothing is lost until max_delivery_attempts; then the message is
        on the dead-letter topic (see the dead-letter backlog alert).
        EOT
    }
  }

  oldest_unacked_text = {
    for k, s in local.subscriptions : k => {
      condition = "Oldest unacked message on ${k} older than ${local.oldest_unacked_thresholds[k]} s"
      documentation = s.push_function != null ? join("\n", [
        "The oldest message on push subscription ${k} (feeding function ${var.name}-${s.push_function}) has waited more than ${local.oldest_unacked_thresholds[k]} seconds.",
        "Either the function keeps failing it (see the function error-rate alert and the delivery retries: `jsonPayload.sysevents.outcome=\"retry\"`) or it cannot keep up (instances at max_instances).",
        "Messages are redelivered with backoff, then dead-lettered to ${s.dead_letter_topic} after ${s.max_delivery_attempts} attempts.",
        ]) : join("\n", [
        "The oldest message on hold subscription ${k} (topic ${s.topic}) is ${local.oldest_unacked_thresholds[k]} seconds old; Pub/Sub drops it after ${s.message_retention_seconds} seconds.",
        "Read, replay or acknowledge what waits there before it is lost:",
        "",
        "    gcloud pubsub subscriptions pull ${k} --limit=10 --format=json",
      ])
    }
  }
}

check "oldest_unacked_thresholds_name_subscriptions" {
  assert {
    condition     = length(setsubtract(keys(var.oldest_unacked_alert_seconds_by_subscription), keys(local.subscriptions))) == 0
    error_message = "oldest_unacked_alert_seconds_by_subscription names subscriptions that topology.json does not have: ${join(", ", setsubtract(keys(var.oldest_unacked_alert_seconds_by_subscription), keys(local.subscriptions)))}."
  }
}

check "oldest_unacked_thresholds_below_retention" {
  assert {
    condition     = alltrue([for k, s in local.subscriptions : local.oldest_unacked_thresholds[k] < s.message_retention_seconds])
    error_message = "An oldest-unacked threshold is not below its subscription's message_retention_seconds: Pub/Sub drops the message before the alert fires (${join(", ", [for k, s in local.subscriptions : k if local.oldest_unacked_thresholds[k] >= s.message_retention_seconds])})."
  }
}

# A job's deliveries fail for good: dead-lettered / (delivered + dead_lettered) over the window is above
# 1 - threshold, i.e. the success rate is below the threshold. Alerting on the failure share rather than
# on the success share is deliberate: a job whose every delivery fails has no "delivered" series at all,
# and a ratio whose numerator has no data is never evaluated.
resource "google_monitoring_alert_policy" "delivery_success_rate" {
  display_name = "${var.name}: delivery success rate"
  combiner     = "OR"
  enabled      = true
  severity     = "ERROR"

  conditions {
    display_name = local.alert_text.delivery_success_rate.condition

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"cloud_run_revision\"",
        "metric.type = \"${local.metric_types.deliveries}\"",
        "metric.labels.outcome = \"dead_lettered\"",
      ])
      denominator_filter = join(" AND ", [
        "resource.type = \"cloud_run_revision\"",
        "metric.type = \"${local.metric_types.deliveries}\"",
        "metric.labels.outcome = one_of(\"delivered\", \"dead_lettered\")",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 1 - var.delivery_success_rate_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.delivery_success_rate_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = local.delivery_group_by
      }

      denominator_aggregations {
        alignment_period     = "${var.delivery_success_rate_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = local.delivery_group_by
      }

      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channels

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = local.alert_text.delivery_success_rate.documentation
  }

  depends_on = [google_logging_metric.metric]
}

# A burst of invalid events: a producer (or a new producer version) sends malformed ones.
resource "google_monitoring_alert_policy" "quarantine_spike" {
  display_name = "${var.name}: quarantine spike"
  combiner     = "OR"
  enabled      = true
  severity     = "WARNING"

  conditions {
    display_name = local.alert_text.quarantine_spike.condition

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"cloud_run_revision\"",
        "metric.type = \"${local.metric_types.quarantined}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.quarantine_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.quarantine_alert_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channels

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = local.alert_text.quarantine_spike.documentation
  }

  depends_on = [google_logging_metric.metric]
}

# A function fails requests: 5xx answers over all requests, per function (Cloud Run's request_count).
# The 503s sysevents answers on purpose, to have Pub/Sub redeliver, are left out by default.
resource "google_monitoring_alert_policy" "function_error_rate" {
  display_name = "${var.name}: function error rate"
  combiner     = "OR"
  enabled      = true
  severity     = "ERROR"

  conditions {
    display_name = local.alert_text.function_error_rate.condition

    condition_threshold {
      filter             = local.function_errors
      denominator_filter = local.function_requests
      comparison         = "COMPARISON_GT"
      threshold_value    = var.function_error_rate_threshold
      duration           = "0s"

      aggregations {
        alignment_period     = "${var.function_error_rate_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "${var.function_error_rate_window_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channels

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = local.alert_text.function_error_rate.documentation
  }
}

# One policy per topology.json subscription: its oldest unacknowledged message. On a push subscription a
# message that old is late (the function keeps failing it, or cannot keep up); on a hold subscription it
# is about to be dropped when its retention runs out.
resource "google_monitoring_alert_policy" "oldest_unacked" {
  for_each = local.subscriptions

  display_name = "${var.name}: oldest unacked message on ${each.key}"
  combiner     = "OR"
  enabled      = true
  severity     = each.value.push_function != null ? "ERROR" : "WARNING"

  conditions {
    display_name = local.oldest_unacked_text[each.key].condition

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"pubsub_subscription\"",
        "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\"",
        "resource.labels.subscription_id = \"${each.key}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = local.oldest_unacked_thresholds[each.key]
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  notification_channels = local.alert_channels

  alert_strategy {
    auto_close = "604800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = local.oldest_unacked_text[each.key].documentation
  }

  depends_on = [google_pubsub_subscription.push, google_pubsub_subscription.hold]
}
