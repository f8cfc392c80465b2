# The audit log: one row per valid event. The schema, partitioning and clustering come from the same
# file the code uses (shared/sysevents/auditlog/audit_schema.json).

locals {
  audit_schema = jsondecode(file("${path.module}/../shared/sysevents/auditlog/audit_schema.json"))
}

resource "google_bigquery_dataset" "sysevents" {
  dataset_id                 = var.bigquery_dataset
  location                   = var.bigquery_location
  description                = "sysevents: the audit log of system events."
  delete_contents_on_destroy = !var.deletion_protection

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "audit" {
  dataset_id          = google_bigquery_dataset.sysevents.dataset_id
  table_id            = var.audit_table
  description         = "One row per valid system event (insertId = event id), written by the audit function."
  deletion_protection = var.deletion_protection
  schema              = jsonencode(local.audit_schema.fields)
  clustering          = local.audit_schema.clustering

  time_partitioning {
    type          = local.audit_schema.time_partitioning.type
    field         = local.audit_schema.time_partitioning.field
    expiration_ms = var.audit_retention_days == null ? null : var.audit_retention_days * 86400000
  }
}
