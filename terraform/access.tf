# A public app is never open by accident: with app_public = true the app gets a login page
# whose "user:password" is generated here, kept in Secret Manager and passed to Cloud Run as
# COMPOSER_APP_AUTH through a secret reference (the value never appears in the service
# definition). Read it with:
#   gcloud secrets versions access latest --secret "$(terraform output -raw app_login_secret)"

resource "random_password" "app_login" {
  count   = var.app_public ? 1 : 0
  length  = 24
  special = false # it is typed into a login form; 24 alphanumerics are ~140 bits
}

resource "google_secret_manager_secret" "app_login" {
  count     = var.app_public ? 1 : 0
  secret_id = "${var.name_prefix}-app-login"
  labels    = { purpose = "app-login" }

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "app_login" {
  count       = var.app_public ? 1 : 0
  secret      = google_secret_manager_secret.app_login[0].id
  secret_data = "${var.app_login_user}:${random_password.app_login[0].result}"
}

# Only the app reads it.
resource "google_secret_manager_secret_iam_member" "app_login" {
  count     = var.app_public ? 1 : 0
  secret_id = google_secret_manager_secret.app_login[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa["app"].member
}
