# Cloud Composer 3 (Airflow 3) runs dags/ and plugins/ (uploaded by scripts/deploy.sh, with core/
# beside the DAGs). Its workers reach Cloud SQL's private IP through the VPC attachment and
# MLflow (internal ingress) as an authorised invoker.

locals {
  # The project's runtime requirements for the DAGs (requirements.txt, "Core library" and the
  # platform pins), minus what Composer itself provides (apache-airflow and its providers) and
  # what only the app needs (the "app" extra: gradio, fastapi, ...). tests/deploy/test_infra.py
  # checks every specifier here against requirements.txt.
  composer_pypi_packages = {
    "librosa"           = "==0.11.0" # Composer 3 runs Python 3.11
    "soundfile"         = "==0.14.0"
    "numpy"             = "==2.4.6"
    "pandas"            = "==3.0.6"
    "pyarrow"           = "==25.0.1"
    "scipy"             = "==1.17.1"
    "soxr"              = "==1.1.0"
    "scikit-learn"      = "==1.9.1"
    "joblib"            = "==1.6.0"
    "threadpoolctl"     = "==3.8.0"
    "mlflow"            = "==3.17.2"
    "sqlalchemy"        = "==2.1.9"
    "psycopg[binary]"   = "==3.3.9"
    "alembic"           = "==1.20.1"
    "pydantic"          = "==2.14.4"
    "annotated-types"   = "==0.8.0"
    "pydantic-settings" = "==2.16.3"
    "typer"             = "==0.29.2"
    "rich"              = "==15.0.0"
    "matplotlib"        = "==3.11.2"
    "requests"          = "==2.34.2"
    "onnxruntime"       = "==1.31.1"
    "mido"              = "==1.3.3"
    "evidently"         = "==0.7.23"
    "google-cloud-run"  = "==0.16.2"
  }
}

resource "google_composer_environment" "main" {
  name   = "${var.name_prefix}-airflow"
  region = var.region
  labels = var.labels

  config {
    environment_size = var.composer_environment_size

    software_config {
      image_version = var.composer_image_version
      pypi_packages = local.composer_pypi_packages

      airflow_config_overrides = {
        core-load_examples               = "False"
        core-dags_are_paused_at_creation = "False"
        core-max_active_runs_per_dag     = "1"
      }

      env_variables = {
        COMPOSER_MLFLOW_TRACKING_URI = google_cloud_run_v2_service.mlflow.uri
        COMPOSER_MLFLOW_UI_URL       = google_cloud_run_v2_service.mlflow.uri
        COMPOSER_APP_URL             = google_cloud_run_v2_service.app.uri
        COMPOSER_REPORTS_URL         = "https://console.cloud.google.com/storage/browser/${google_storage_bucket.buckets["reports"].name}"
        # Private IP, TLS required. The password is not here: it is the Secret Manager secret
        # below (composer's service account may read it).
        COMPOSER_DATABASE_URL             = local.composer_db_url
        COMPOSER_DATABASE_PASSWORD_SECRET = "${google_secret_manager_secret.db_password.id}/versions/latest"
        COMPOSER_MODEL_NAME               = var.model_name
        COMPOSER_CHAMPION_ALIAS           = var.champion_alias
        # The bucket's data/ folder is mounted at /home/airflow/gcs/data on every worker.
        COMPOSER_HOME     = "/home/airflow/gcs/data/composer-home"
        COMPOSER_DEMO_DIR = "/home/airflow/gcs/data/demo"
        # Where a promotion is rolled out (core.deploy.roll_out_if_configured).
        COMPOSER_DEPLOY_TARGET  = local.app_service_id
        COMPOSER_DATA_BUCKET    = google_storage_bucket.buckets["data"].name
        COMPOSER_REPORTS_BUCKET = google_storage_bucket.buckets["reports"].name
      }
    }

    node_config {
      service_account = google_service_account.sa["composer"].email
      # Composer 3: attach the environment to the VPC so workers reach Cloud SQL's private IP.
      network    = google_compute_network.main.id
      subnetwork = google_compute_subnetwork.main.id
    }
  }

  depends_on = [
    google_project_iam_member.composer_worker,
    google_service_account_iam_member.composer_agent,
    google_secret_manager_secret_iam_member.db_password,
    google_service_networking_connection.private_services,
  ]
}
