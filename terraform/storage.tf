# Buckets: MLflow artifacts (served through the MLflow server only), data (corpora, feature
# tables), reports (monitoring). All private, versioned, uniform access, access-logged.

locals {
  buckets = {
    artifacts = "MLflow artifacts (models, plots), written and read only by the MLflow server"
    data      = "Audio corpora and feature tables used by the Airflow DAGs"
    reports   = "Monitoring reports written by the monitor DAG"
  }
}

resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log sink itself; logging it into itself would loop.
  name                        = "${var.project_id}-${var.name_prefix}-access-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket" "buckets" {
  for_each = local.buckets

  name                        = "${var.project_id}-${var.name_prefix}-${each.key}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = { purpose = each.key }

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = each.key
  }

  depends_on = [google_project_service.apis]
}
