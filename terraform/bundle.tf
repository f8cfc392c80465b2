# One zip per function: functions/<name>/* at the root, functions/requirements.txt, and the shared
# library as sysevents/. The object is named by the zip's MD5, so a function is rebuilt and
# redeployed only when its own bundle changed.

resource "google_storage_bucket" "bundles" {
  name                        = "${var.project_id}-${var.name}-bundles"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # build inputs only; every bundle can be rebuilt from the repository

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

data "archive_file" "bundle" {
  for_each = module.topology.bundles

  type             = "zip"
  output_path      = "${path.module}/.build/${each.key}.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = each.value
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket_object" "bundle" {
  for_each = data.archive_file.bundle

  name         = "functions/${each.key}-${each.value.output_md5}.zip"
  bucket       = google_storage_bucket.bundles.name
  source       = each.value.output_path
  content_type = "application/zip"

  lifecycle {
    create_before_destroy = true
  }
}
