terraform {
  required_version = ">= 1.11, < 2.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.50, < 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }

  # State: keep it in a GCS bucket (see docs/deploy.md, "State"), e.g. a backend.tf of your own with
  #   terraform { backend "gcs" {} }
  # and `terraform init -backend-config=bucket=<state bucket> -backend-config=prefix=sysevents`.
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = var.labels
}
