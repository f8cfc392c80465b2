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

  notification_channels = concat([for c in google_monitoring_notification_channel.email : c.id], var.alert_notification_channels)

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
