# Secret Manager secrets listed in topology.json's `secrets`, named "<var.name>-<secret>". Functions
# read them as environment variables (their entries' `secrets`); only those functions may access them.
# Values are added out of band (`gcloud secrets versions add`), or once from var.secret_values as a
# write-only argument, which is never stored in the Terraform state.

resource "google_secret_manager_secret" "secret" {
  for_each = module.topology.secrets

  secret_id   = "${var.name}-${each.key}"
  annotations = { description = each.value }

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "initial" {
  for_each = toset(nonsensitive(keys(var.secret_values)))

  secret                 = google_secret_manager_secret.secret[each.key].id
  secret_data_wo         = var.secret_values[each.key]
  secret_data_wo_version = 1

  lifecycle {
    precondition {
      condition     = contains(keys(module.topology.secrets), each.key)
      error_message = "secret_values names a secret that topology.json does not declare."
    }
  }
}
