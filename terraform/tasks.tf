# The durable delay queue (sysevents.transport.delays): every wait -- a delivery's next attempt on its job's retry
# schedule, a delivery its receiver told to slow down, a rate-limit slot, an alert timer -- is a Cloud
# Tasks task that publishes its message back to Pub/Sub at its time. The task carries an OAuth token of
# the releaser service account, which may publish to the release topics only; no function runs to
# release a wait.

locals {
  waiting_functions = { for name, f in local.functions : name => { function = name } if f.waits }
}

resource "google_cloud_tasks_queue" "delays" {
  name     = "${var.name}-${module.topology.delay_queue}"
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.delay_queue_max_dispatches_per_second
    max_concurrent_dispatches = var.delay_queue_max_concurrent_dispatches
  }

  # A release only fails if Pub/Sub refuses the publish: keep trying, backing off, with no limit.
  retry_config {
    max_attempts       = -1
    max_retry_duration = "0s"
    min_backoff        = "1s"
    max_backoff        = "300s"
    max_doublings      = 8
  }

  stackdriver_logging_config {
    sampling_ratio = var.delay_queue_log_sampling_ratio
  }

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "releaser" {
  account_id   = trimsuffix(substr("${var.name}-releaser", 0, 30), "-")
  display_name = "${var.name}: publishes released waits of the delay queue"
}

resource "google_pubsub_topic_iam_member" "releaser_publishes" {
  for_each = toset(module.topology.release_topics)

  topic  = google_pubsub_topic.topic[each.key].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.releaser.member
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.waiting_functions

  name     = google_cloud_tasks_queue.delays.name
  location = google_cloud_tasks_queue.delays.location
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.function[each.value.function].member
}

# Creating a task that carries the releaser's token needs permission to act as the releaser.
resource "google_service_account_iam_member" "releaser_user" {
  for_each = local.waiting_functions

  service_account_id = google_service_account.releaser.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.function[each.value.function].member
}
