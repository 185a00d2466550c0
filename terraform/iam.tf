# One service account per workload, each with only what it uses. Bindings are on the resource
# (bucket, secret, service) wherever the API allows; project-level only where it does not.

resource "google_service_account" "sa" {
  for_each     = local.sa_ids
  account_id   = each.value
  display_name = "composer-id ${each.key}"
  description  = "Runtime identity of the composer-id ${each.key} (managed by terraform)."
  depends_on   = [google_project_service.apis]
}

# Cloud SQL connector (the /cloudsql socket on Cloud Run): cloudsql.instances.connect is only
# grantable on the project.
resource "google_project_iam_member" "sql_client" {
  for_each = toset(["app", "mlflow"])
  project  = var.project_id
  role     = "roles/cloudsql.client"
  member   = google_service_account.sa[each.key].member
}

# Composer 3 workers run as this account; composer.worker is the documented minimum.
resource "google_project_iam_member" "composer_worker" {
  #checkov:skip=CKV_GCP_49:Cloud Composer requires roles/composer.worker on the project for the environment's service account (it cannot be granted on a narrower resource); the account is dedicated to this environment.
  project = var.project_id
  role    = "roles/composer.worker"
  member  = google_service_account.sa["composer"].member
}

# The Composer service agent must be allowed to act as the environment's service account.
resource "google_service_account_iam_member" "composer_agent" {
  service_account_id = google_service_account.sa["composer"].name
  role               = "roles/composer.ServiceAgentV2Ext"
  member             = "serviceAccount:service-${data.google_project.this.number}@cloudcomposer-accounts.iam.gserviceaccount.com"
}

# The database password: read by the app, MLflow and the DAGs.
resource "google_secret_manager_secret_iam_member" "db_password" {
  for_each  = toset(["app", "mlflow", "composer"])
  secret_id = google_secret_manager_secret.db_password.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa[each.key].member
}

# Buckets: MLflow owns the artifacts; the DAGs own data and reports.
resource "google_storage_bucket_iam_member" "mlflow_artifacts" {
  bucket = google_storage_bucket.buckets["artifacts"].name
  role   = "roles/storage.objectUser"
  member = google_service_account.sa["mlflow"].member
}

resource "google_storage_bucket_iam_member" "composer_buckets" {
  for_each = toset(["data", "reports"])
  bucket   = google_storage_bucket.buckets[each.key].name
  role     = "roles/storage.objectUser"
  member   = google_service_account.sa["composer"].member
}

# Roll-outs from the train DAG (core.deploy.roll_out): update the app service, and deploy
# revisions that run as the app's service account.
resource "google_cloud_run_v2_service_iam_member" "composer_deploys_app" {
  name     = google_cloud_run_v2_service.app.name
  location = var.region
  role     = "roles/run.developer"
  member   = google_service_account.sa["composer"].member
}

resource "google_service_account_iam_member" "composer_acts_as_app" {
  service_account_id = google_service_account.sa["app"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.sa["composer"].member
}

# Who may call MLflow: the app and the DAGs, nobody else.
resource "google_cloud_run_v2_service_iam_member" "mlflow_invokers" {
  for_each = toset(["app", "composer"])
  name     = google_cloud_run_v2_service.mlflow.name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.sa[each.key].member
}

# The app is public only when asked for.
resource "google_cloud_run_v2_service_iam_member" "app_public" {
  count    = var.app_public ? 1 : 0
  name     = google_cloud_run_v2_service.app.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "allUsers"
}
