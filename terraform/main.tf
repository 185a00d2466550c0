# Shared names and the Google APIs the platform needs.

locals {
  # Service account IDs: 6-30 characters.
  sa_ids = {
    app      = "${var.name_prefix}-app"
    mlflow   = "${var.name_prefix}-mlflow"
    composer = "${var.name_prefix}-composer"
  }
  registry = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
  images = {
    app    = "${local.registry}/app:${var.image_tag}"
    mlflow = "${local.registry}/mlflow:${var.image_tag}"
  }
  app_service_name    = "${var.name_prefix}-app"
  mlflow_service_name = "${var.name_prefix}-mlflow"
  # Full resource name of the app service: what core.deploy.roll_out() takes.
  app_service_id = "projects/${var.project_id}/locations/${var.region}/services/${local.app_service_name}"
}

resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "composer.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])
  project = var.project_id
  service = each.value
  # Turning an API off could break other workloads in the project: leave them on at destroy.
  disable_on_destroy = false
}

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Images are built from this public repository's code; Google-managed encryption is enough and a CMEK key ring would outlive every destroy.
  location      = var.region
  repository_id = var.name_prefix
  description   = "Container images of the composer-id app and MLflow server."
  format        = "DOCKER"

  docker_config {
    # A tag always names the same image (make deploy tags with the git commit).
    immutable_tags = true
  }

  depends_on = [google_project_service.apis]
}
