# One Cloud Functions (2nd gen) HTTP function per topology.json `functions` entry, each running as
# its own service account. Pub/Sub-fed functions accept internal traffic only (Pub/Sub push and Cloud
# Scheduler count as internal); functions with invoked_by = "users" (the admin API) accept any
# network origin but still require an identity token of a member of var.api_invokers.

locals {
  common_env = {
    GOOGLE_CLOUD_PROJECT            = var.project_id
    SYSEVENTS_PROJECT               = var.project_id
    SYSEVENTS_AUDIT_DATASET         = google_bigquery_dataset.sysevents.dataset_id
    SYSEVENTS_AUDIT_TABLE           = var.audit_table
    SYSEVENTS_BIGQUERY_LOCATION     = var.bigquery_location
    SYSEVENTS_DELAY_QUEUE           = google_cloud_tasks_queue.delays.id
    SYSEVENTS_DELAY_SERVICE_ACCOUNT = google_service_account.releaser.email
    SYSEVENTS_TIME_SCALE            = tostring(var.time_scale)
    LOG_EXECUTION_ID                = "true"
  }
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = "${var.name}-${each.key}"
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = var.python_runtime
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.bundles.name
        object = google_storage_bucket_object.bundle[each.key].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function[each.key].email
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout_seconds
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    ingress_settings                 = each.value.invoked_by == "users" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    environment_variables            = merge(local.common_env, { SYSEVENTS_FUNCTION = each.key, SYSEVENTS_FUNCTION_MEMORY = each.value.memory }, var.function_env, each.value.env, lookup(var.function_env_by_name, each.key, {}))

    dynamic "secret_environment_variables" {
      for_each = each.value.secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_bundles,
    google_secret_manager_secret_iam_member.function_reads_secret,
  ]
}
