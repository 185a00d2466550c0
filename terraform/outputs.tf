output "app_url" {
  description = "URL of the Gradio app (callers need run.invoker unless app_public = true)."
  value       = google_cloud_run_v2_service.app.uri
}

output "app_service" {
  description = "Full resource name of the app service: the target of core.deploy.roll_out()."
  value       = local.app_service_id
}

output "mlflow_url" {
  description = "URL of the MLflow server (internal ingress; callers need run.invoker)."
  value       = google_cloud_run_v2_service.mlflow.uri
}

output "composer_airflow_uri" {
  description = "Airflow UI/API of the Composer environment."
  value       = google_composer_environment.main.config[0].airflow_uri
}

output "composer_dag_gcs_prefix" {
  description = "gs:// folder Composer loads DAGs from (scripts/deploy.sh uploads dags/ and core/ there)."
  value       = google_composer_environment.main.config[0].dag_gcs_prefix
}

output "buckets" {
  description = "Bucket names: MLflow artifacts, data, reports and access logs."
  value = merge(
    { for key, bucket in google_storage_bucket.buckets : key => bucket.name },
    { access_logs = google_storage_bucket.access_logs.name },
  )
}

output "image_repository" {
  description = "Artifact Registry path the images are pushed to (REGISTRY/app:TAG, REGISTRY/mlflow:TAG)."
  value       = local.registry
}

output "sql_instance_connection_name" {
  description = "Cloud SQL instance connection name (PROJECT:REGION:INSTANCE)."
  value       = google_sql_database_instance.main.connection_name
}

output "db_password_secret" {
  description = "Secret Manager secret holding the database password (the name only, never the value)."
  value       = google_secret_manager_secret.db_password.id
}

output "app_login_secret" {
  description = "Secret Manager secret holding the app's login (user:password) when app_public = true; null otherwise. The name only, never the value."
  value       = var.app_public ? google_secret_manager_secret.app_login[0].id : null
}
