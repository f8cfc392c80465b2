# A throwaway staging project: no deletion protection, schedules paused, small instances.
project_id = "acme-sysevents-staging"
region     = "europe-west1"

firestore_location  = "europe-west1"
bigquery_location   = "europe-west1"
deletion_protection = false
schedule_paused     = true

api_invokers = ["group:platform-admins@acme.example"]

function_defaults = {
  memory        = "512Mi"
  max_instances = 5
}

function_env = {
  SYSEVENTS_WEBHOOK_READ_TIMEOUT = "10"
}

audit_retention_days = 30

labels = {
  app = "sysevents"
  env = "staging"
}

# Monitoring: test jobs come and go, so no per-job time series; alerts per sink, and less eager.
metrics_per_job_labels          = false
delivery_success_rate_threshold = 0.8
quarantine_alert_threshold      = 50

# Email alerts go to a test mailbox (the SMTP password is the Secret Manager secret "sysevents-smtp-password").
function_env_by_name = {
  email = {
    SYSEVENTS_SMTP_HOST     = "smtp.acme.example"
    SYSEVENTS_SMTP_USERNAME = "alerts-staging@acme.example"
    SYSEVENTS_EMAIL_FROM    = "sysevents staging <alerts-staging@acme.example>"
  }
}
