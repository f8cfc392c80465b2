# The Firestore database holding jobs, accounts, API keys and export state, and the composite indexes
# the code's queries need (firestore.indexes.json, in the Firebase CLI's format).

locals {
  firestore_indexes = {
    for i in jsondecode(file("${path.module}/firestore.indexes.json")).indexes :
    "${i.collectionGroup} ${join(" ", [for f in i.fields : "${f.fieldPath}:${try(f.order, f.arrayConfig)}"])}" => i
  }
}

resource "google_firestore_database" "default" {
  count = var.create_firestore_database ? 1 : 0

  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.apis]
}

resource "google_firestore_index" "index" {
  for_each = local.firestore_indexes

  database    = "(default)"
  collection  = each.value.collectionGroup
  query_scope = try(each.value.queryScope, "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }

  depends_on = [google_firestore_database.default]
}

# Firestore TTL: documents the code writes with an `expire_at` timestamp are deleted after it (typically
# within a day). One policy per collection group (a subcollection name covers it under every parent);
# expire_at is never queried, so its single-field indexes are off (a growing timestamp would hotspot).
# tests/terraform/test_terraform_ttl.py finds every write of expire_at in the library and checks this list.
locals {
  ttl_collection_groups = {
    attempts         = "job_state/{job key}/attempts: every job's attempt log (sysevents.delivery.accounting)"
    dead_letters     = "job_state/{job key}/dead_letters: dead-lettered deliveries, for replay"
    quarantine       = "quarantine/{message id}: events ingest refused, with the reason (sysevents.transport.quarantine)"
    alert_seen       = "alerts: (event, job) pairs already accepted (sysevents.alerts.store)"
    alert_outbox     = "alerts: rendered notifications (emails, posts, digests) and their send state"
    alert_firing     = "alerts: alerts notified and not resolved yet (resolve_on), kept 30 days"
    alert_counts     = "alerts: events a threshold counted, kept a day beyond its window (sysevents.alerts.condstore)"
    alert_conditions = "alerts: threshold and absence state per condition group, kept 30 days after its last change"
    email_quota      = "email_quota/{aid}:{day}: each account's emails sent per UTC day (sysevents.sinks.email.quota)"
  }
}

resource "google_firestore_field" "ttl" {
  for_each = local.ttl_collection_groups

  database   = "(default)"
  collection = each.key
  field      = "expire_at"

  ttl_config {}

  index_config {}

  depends_on = [google_firestore_database.default]
}
