output "function_urls" {
  description = "HTTPS URL of each function (the admin API's is the one to call with an identity token)."
  value       = { for k, f in google_cloudfunctions2_function.function : k => f.service_config[0].uri }
}

output "api_urls" {
  description = "URLs of the functions that people and tools call (invoked_by = \"users\"), e.g. the admin API."
  value       = { for k, f in google_cloudfunctions2_function.function : k => f.service_config[0].uri if local.functions[k].invoked_by == "users" }
}

output "function_service_accounts" {
  description = "Service account email of each function (grant the bigquery function access to export target datasets)."
  value       = { for k, sa in google_service_account.function : k => sa.email }
}

output "push_service_account" {
  description = "Service account in the OIDC tokens of the push subscriptions."
  value       = google_service_account.push.email
}

output "ingest_topic" {
  description = "Full name of the topic producers publish system events to."
  value       = google_pubsub_topic.topic[module.topology.ingest_topic].id
}

output "topics" {
  description = "Full name of every topic."
  value       = { for k, t in google_pubsub_topic.topic : k => t.id }
}

output "dead_letter_subscriptions" {
  description = "Hold subscriptions on the dead-letter topics (watched by the alert policy)."
  value       = keys(module.topology.dead_letter_holds)
}

output "audit_table" {
  description = "The audit table, as project.dataset.table for queries."
  value       = "${var.project_id}.${google_bigquery_dataset.sysevents.dataset_id}.${google_bigquery_table.audit.table_id}"
}

output "secrets" {
  description = "Secret Manager secret ids, by topology name: add their values with `gcloud secrets versions add`."
  value       = { for k, s in google_secret_manager_secret.secret : k => s.secret_id }
}

output "bundle_bucket" {
  description = "Bucket holding the function bundles (objects named by content hash)."
  value       = google_storage_bucket.bundles.name
}

output "log_metric_types" {
  description = "Metric type of each log-based metric (logging_metrics.tf), for charts and alerts of your own."
  value       = { for k, m in google_logging_metric.metric : k => "logging.googleapis.com/user/${m.name}" }
}

output "dashboard_url" {
  description = "The sysevents dashboard in the Cloud console."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.sysevents.id), 3)}?project=${var.project_id}"
}

output "alert_policies" {
  description = "Alert policy names (projects/P/alertPolicies/N) by alert; oldest-unacked ones by subscription."
  value = merge(
    {
      dead_letter_backlog   = google_monitoring_alert_policy.dead_letter_backlog.name
      delivery_success_rate = google_monitoring_alert_policy.delivery_success_rate.name
      quarantine_spike      = google_monitoring_alert_policy.quarantine_spike.name
      function_error_rate   = google_monitoring_alert_policy.function_error_rate.name
    },
    { for k, p in google_monitoring_alert_policy.oldest_unacked : "oldest_unacked/${k}" => p.name },
  )
}
