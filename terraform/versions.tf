terraform {
  # >= 1.9: variable validations refer to other variables (app scaling bounds).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "7.32.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
  }

  # State: pass a GCS backend at init time (scripts/deploy.sh does, with TF_STATE_BUCKET):
  #   terraform init -backend-config="bucket=..." -backend-config="prefix=composer-id"
  backend "gcs" {}
}

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = var.labels
}

data "google_project" "this" {
  project_id = var.project_id
}
