# sysevents on Google Cloud. What to deploy comes from shared/sysevents/topology.json (read by the
# topology module); each concern has its own file: pubsub.tf, functions.tf, bundle.tf, iam.tf,
# firestore.tf, bigquery.tf, secrets.tf, scheduler.tf, logging_metrics.tf (log-based metrics),
# monitoring.tf (alert policies), dashboard.tf.

module "topology" {
  source = "./modules/topology"

  topology_file     = "${path.module}/../shared/sysevents/topology.json"
  library_dir       = "${path.module}/../shared/sysevents"
  functions_dir     = "${path.module}/../functions"
  function_defaults = var.function_defaults
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  functions = module.topology.functions

  # Service account ids must be 6-30 characters.
  account_ids = { for k in keys(local.functions) : k => trimsuffix(substr("${var.name}-fn-${k}", 0, 30), "-") }

  # The Pub/Sub service agent: it dead-letters messages and mints the push subscriptions' OIDC tokens.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  apis = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com", # project IAM bindings, data.google_project
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}

check "function_env_by_name_names_functions" {
  assert {
    condition     = length(setsubtract(keys(var.function_env_by_name), keys(local.functions))) == 0
    error_message = "function_env_by_name names functions that topology.json does not have: ${join(", ", setsubtract(keys(var.function_env_by_name), keys(local.functions)))}."
  }
}

check "service_account_ids_unique" {
  assert {
    condition     = length(distinct(values(local.account_ids))) == length(local.account_ids)
    error_message = "Two functions map to the same service account id after truncation to 30 characters: shorten var.name or the function names."
  }
}

# Email alerts need an SMTP server: without SYSEVENTS_SMTP_HOST every alert is retried, then dead-lettered
# with the reason "SMTP is not configured". A warning at plan time, not an error (alerts may come later).
check "email_function_has_an_smtp_host" {
  assert {
    condition = alltrue([
      for name, f in local.functions : contains(keys(merge(var.function_env, f.env, lookup(var.function_env_by_name, name, {}))), "SYSEVENTS_SMTP_HOST")
      if contains(keys(f.secrets), "SYSEVENTS_SMTP_PASSWORD")
    ])
    error_message = "The email function has no SYSEVENTS_SMTP_HOST: set it (and SYSEVENTS_SMTP_USERNAME, SYSEVENTS_EMAIL_FROM) in function_env_by_name.email."
  }
}
