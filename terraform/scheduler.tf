# Cloud Scheduler jobs from the functions' `schedules` (e.g. sending due email digests, running
# continuous batch exports): an authenticated POST of the schedule's JSON body to a path of the function.

resource "google_cloud_scheduler_job" "schedule" {
  for_each = module.topology.schedules

  name             = "${var.name}-${each.key}"
  region           = var.region
  description      = "POST ${each.value.path} on the ${each.value.function} function."
  schedule         = each.value.cron
  time_zone        = each.value.time_zone
  paused           = var.schedule_paused
  attempt_deadline = "${max(15, local.functions[each.value.function].timeout_seconds)}s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "10s"
  }

  http_target {
    http_method = "POST"
    uri         = "${trimsuffix(google_cloudfunctions2_function.function[each.value.function].service_config[0].uri, "/")}${each.value.path}"
    body        = base64encode(each.value.body)
    headers     = { "Content-Type" = "application/json" }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.function[each.value.function].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_service_iam_member.scheduler_invoker]
}
