# Identities and grants, least privilege: one service account per function with only what its
# topology.json entry asks for; one for Pub/Sub pushes, one for Cloud Scheduler, one for builds.

locals {
  function_project_roles = merge([
    for name, f in local.functions : { for r in f.project_roles : "${name} ${r}" => { function = name, role = r } }
  ]...)
  function_dataset_roles = merge([
    for name, f in local.functions : { for r in f.dataset_roles : "${name} ${r}" => { function = name, role = r } }
  ]...)
  function_publishes = merge([
    for name, f in local.functions : { for t in f.publishes : "${name} ${t}" => { function = name, topic = t } }
  ]...)
  function_secrets = merge([
    for name, f in local.functions : { for s in distinct(values(f.secrets)) : "${name} ${s}" => { function = name, secret = s } }
  ]...)
  push_fed_functions  = toset([for s in module.topology.push_subscriptions : s.push_function])
  scheduled_functions = toset([for s in module.topology.schedules : s.function])
  api_invocations = merge([
    for name, f in local.functions : { for m in var.api_invokers : "${name} ${m}" => { function = name, member = m } }
    if f.invoked_by == "users"
  ]...)
  build_roles = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])
}

# --- function identities -------------------------------------------------------------------------------

resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = local.account_ids[each.key]
  display_name = "sysevents function ${each.key}"
  description  = "Runs the ${each.key} function; holds only the roles its topology.json entry lists."
}

resource "google_project_iam_member" "function" {
  for_each = local.function_project_roles

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.function[each.value.function].member
}

resource "google_bigquery_dataset_iam_member" "function" {
  for_each = local.function_dataset_roles

  dataset_id = google_bigquery_dataset.sysevents.dataset_id
  role       = each.value.role
  member     = google_service_account.function[each.value.function].member
}

# Export targets: existing datasets that BigQuery export jobs write into (var.bigquery_export_datasets).
# The function fed by the "bigquery" sink gets dataEditor on each, nothing on the others; its project role
# roles/bigquery.user (topology.json) lets it run queries and create the datasets export jobs ask for
# (create_if_missing), which it then owns.
resource "google_bigquery_dataset_iam_member" "export_target" {
  for_each = {
    for d in var.bigquery_export_datasets : d => {
      project  = length(split(".", d)) == 2 ? split(".", d)[0] : var.project_id
      dataset  = element(split(".", d), length(split(".", d)) - 1)
      function = module.topology.sink_functions["bigquery"]
    } if contains(keys(module.topology.sink_functions), "bigquery")
  }

  project    = each.value.project
  dataset_id = each.value.dataset
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function[each.value.function].member
}

resource "google_pubsub_topic_iam_member" "function_publishes" {
  for_each = local.function_publishes

  topic  = google_pubsub_topic.topic[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = google_service_account.function[each.value.function].member
}

resource "google_secret_manager_secret_iam_member" "function_reads_secret" {
  for_each = local.function_secrets

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.value.function].member
}

# --- Pub/Sub push ----------------------------------------------------------------------------------------

resource "google_service_account" "push" {
  account_id   = "${var.name}-push"
  display_name = "sysevents Pub/Sub push"
  description  = "Identity in the OIDC token of every sysevents push subscription; may invoke the push-fed functions."
}

resource "google_cloud_run_service_iam_member" "push_invoker" {
  for_each = local.push_fed_functions

  location = var.region
  service  = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# The Pub/Sub service agent signs the push OIDC tokens ...
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# ... and dead-letters: it must publish to each dead-letter topic and subscribe to each source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = toset([for s in module.topology.push_subscriptions : s.dead_letter_topic])

  topic  = google_pubsub_topic.topic[each.key].name
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = module.topology.push_subscriptions

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# --- Cloud Scheduler -------------------------------------------------------------------------------------

resource "google_service_account" "scheduler" {
  account_id   = "${var.name}-scheduler"
  display_name = "sysevents Cloud Scheduler"
  description  = "Identity in the OIDC token of sysevents' Cloud Scheduler jobs; may invoke only the scheduled functions."
}

resource "google_cloud_run_service_iam_member" "scheduler_invoker" {
  for_each = local.scheduled_functions

  location = var.region
  service  = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# --- HTTP APIs invoked by people and tools ---------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "api_invoker" {
  for_each = local.api_invocations

  location = var.region
  service  = google_cloudfunctions2_function.function[each.value.function].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value.member
}

# --- builds ----------------------------------------------------------------------------------------------

resource "google_service_account" "build" {
  account_id   = "${var.name}-build"
  display_name = "sysevents function builds"
  description  = "Cloud Build identity that turns the function bundles into containers."
}

resource "google_project_iam_member" "build" {
  for_each = local.build_roles

  project = var.project_id
  role    = each.key
  member  = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_reads_bundles" {
  bucket = google_storage_bucket.bundles.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}
