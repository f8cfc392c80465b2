# terraform apply -var-file=examples/production.tfvars
project_id = "acme-sysevents-prod"
region     = "europe-west1"

firestore_location = "eur3"
bigquery_location  = "EU"

# Who may call the admin API (functions with invoked_by = "users") with an identity token.
api_invokers = [
  "group:platform-admins@acme.example",
  "serviceAccount:deployer@acme-sysevents-prod.iam.gserviceaccount.com",
]

alert_emails                = ["oncall@acme.example"]
dead_letter_alert_threshold = 0

# Monitoring (docs/monitoring.md). Delivery metrics per job (a few time series per active job).
metrics_per_job_labels               = true
delivery_success_rate_threshold      = 0.95
delivery_success_rate_window_seconds = 3600
oldest_unacked_alert_seconds         = 3600
# Ingest is quick: a backlog there delays every sink.
oldest_unacked_alert_seconds_by_subscription = {
  "system-events-ingest" = 900
}

function_defaults = {
  max_instances = 50
}

labels = {
  app = "sysevents"
  env = "prod"
}

# Email alerts: the SMTP password is the Secret Manager secret "sysevents-smtp-password".
function_env_by_name = {
  email = {
    SYSEVENTS_SMTP_HOST     = "smtp.acme.example"
    SYSEVENTS_SMTP_USERNAME = "alerts@acme.example"
    SYSEVENTS_EMAIL_FROM    = "sysevents <alerts@acme.example>"
  }
}

# Existing datasets that BigQuery export jobs write into (the bigquery function gets dataEditor there).
bigquery_export_datasets = ["analytics_exports"]
