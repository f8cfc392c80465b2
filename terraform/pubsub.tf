# Topics and subscriptions, exactly as topology.json declares them.

resource "google_pubsub_topic" "topic" {
  for_each = module.topology.topics

  name = each.key

  depends_on = [google_project_service.apis]
}

# Push subscriptions feed the functions. They are ours (not Eventarc's), so the retry and dead-letter
# policy is the one in topology.json, and each push carries an OIDC token of the push service account.
resource "google_pubsub_subscription" "push" {
  for_each = module.topology.push_subscriptions

  name                       = each.key
  topic                      = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = "${each.value.message_retention_seconds}s"
  enable_message_ordering    = each.value.enable_message_ordering

  retry_policy {
    minimum_backoff = "${each.value.minimum_backoff_seconds}s"
    maximum_backoff = "${each.value.maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic[each.value.dead_letter_topic].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function[each.value.push_function].service_config[0].uri}${each.value.push_path}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = google_cloudfunctions2_function.function[each.value.push_function].service_config[0].uri
    }
  }

  expiration_policy {
    ttl = "" # never expire
  }

  depends_on = [
    google_cloud_run_service_iam_member.push_invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.push_token_creator,
  ]
}

# Hold subscriptions keep dead letters and quarantined events until someone reads them.
resource "google_pubsub_subscription" "hold" {
  for_each = module.topology.hold_subscriptions

  name                       = each.key
  topic                      = google_pubsub_topic.topic[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = "${each.value.message_retention_seconds}s"
  enable_message_ordering    = each.value.enable_message_ordering

  expiration_policy {
    ttl = ""
  }
}
