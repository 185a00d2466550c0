# Cloud Run (v2): the Gradio app and the MLflow server.

locals {
  vpc_interface = {
    network    = google_compute_network.main.id
    subnetwork = google_compute_subnetwork.main.id
  }
  # MLflow rejects unknown Host headers (403). Its run.app host names start with the service name.
  mlflow_allowed_hosts = "${local.mlflow_service_name}-*.run.app"
}

resource "google_cloud_run_v2_service" "mlflow" {
  name                 = local.mlflow_service_name
  location             = var.region
  description          = "MLflow tracking server and model registry (artifacts proxied to GCS)."
  ingress              = var.mlflow_ingress
  deletion_protection  = var.deletion_protection
  invoker_iam_disabled = false # callers need run.invoker (granted in iam.tf)

  template {
    service_account                  = google_service_account.sa["mlflow"].email
    max_instance_request_concurrency = 40
    timeout                          = "300s"

    scaling {
      min_instance_count = 0
      max_instance_count = 2
    }

    vpc_access {
      network_interfaces {
        network    = local.vpc_interface.network
        subnetwork = local.vpc_interface.subnetwork
      }
      # The Cloud SQL connector reaches the instance's private IP through the VPC.
      egress = "PRIVATE_RANGES_ONLY"
    }

    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.main.connection_name]
      }
    }

    containers {
      name    = "mlflow"
      image   = local.images.mlflow
      command = ["mlflow"]
      args = [
        "server",
        "--serve-artifacts",
        "--artifacts-destination", "gs://${google_storage_bucket.buckets["artifacts"].name}/mlartifacts",
        "--host", "0.0.0.0",
        "--port", "8080",
        "--workers", "1",
        "--allowed-hosts", local.mlflow_allowed_hosts,
      ]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "MLFLOW_BACKEND_STORE_URI"
        value = local.mlflow_db_url
      }
      env {
        name  = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
        value = "false"
      }
      env {
        name = "PGPASSWORD"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.db_password.secret_id
            version = "latest"
          }
        }
      }

      volume_mounts {
        name       = "cloudsql"
        mount_path = "/cloudsql"
      }

      startup_probe {
        initial_delay_seconds = 5
        period_seconds        = 5
        failure_threshold     = 24
        timeout_seconds       = 3
        http_get {
          path = "/health"
        }
      }

      liveness_probe {
        period_seconds    = 30
        failure_threshold = 3
        timeout_seconds   = 5
        http_get {
          path = "/health"
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.db_password,
    google_secret_manager_secret_version.db_password,
    google_project_iam_member.sql_client,
    google_storage_bucket_iam_member.mlflow_artifacts,
    google_sql_database.databases,
    google_sql_user.app,
  ]
}

resource "google_cloud_run_v2_service" "app" {
  # Callers need run.invoker unless app_public adds allUsers (see iam.tf).
  name                 = local.app_service_name
  location             = var.region
  description          = "Gradio app: name the composer of a piano recording."
  ingress              = "INGRESS_TRAFFIC_ALL"
  deletion_protection  = var.deletion_protection
  invoker_iam_disabled = false

  template {
    service_account                  = google_service_account.sa["app"].email
    session_affinity                 = true # Gradio keeps per-session state (queue, uploads)
    max_instance_request_concurrency = var.app_concurrency
    timeout                          = "300s"

    scaling {
      min_instance_count = var.app_min_instances
      max_instance_count = var.app_max_instances
    }

    vpc_access {
      network_interfaces {
        network    = local.vpc_interface.network
        subnetwork = local.vpc_interface.subnetwork
      }
      # All egress through the VPC: MLflow's internal-only ingress accepts it, and the app
      # needs nothing from the internet.
      egress = "ALL_TRAFFIC"
    }

    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.main.connection_name]
      }
    }

    containers {
      name  = "app"
      image = local.images.app

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "2"
          memory = "4Gi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "COMPOSER_MLFLOW_TRACKING_URI"
        value = google_cloud_run_v2_service.mlflow.uri
      }
      env {
        name  = "COMPOSER_DATABASE_URL"
        value = local.app_db_url
      }
      env {
        name  = "COMPOSER_MODEL_NAME"
        value = var.model_name
      }
      env {
        name  = "COMPOSER_CHAMPION_ALIAS"
        value = var.champion_alias
      }
      env {
        name = "PGPASSWORD"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.db_password.secret_id
            version = "latest"
          }
        }
      }
      # Public app: its login page, "user:password" from Secret Manager (see access.tf).
      dynamic "env" {
        for_each = var.app_public ? [google_secret_manager_secret.app_login[0].secret_id] : []
        content {
          name = "COMPOSER_APP_AUTH"
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      volume_mounts {
        name       = "cloudsql"
        mount_path = "/cloudsql"
      }

      startup_probe {
        initial_delay_seconds = 10
        period_seconds        = 10
        failure_threshold     = 30
        timeout_seconds       = 5
        http_get {
          path = "/"
        }
      }

      liveness_probe {
        period_seconds    = 30
        failure_threshold = 3
        timeout_seconds   = 5
        http_get {
          path = "/"
        }
      }
    }
  }

  lifecycle {
    # core.deploy.roll_out() adds COMPOSER_MODEL_VERSION to the live service; the next apply
    # removes it again (harmless: the app always serves the champion alias). Revision names
    # and client fields are set by gcloud/roll-outs, not by this configuration.
    ignore_changes = [client, client_version, template[0].revision]
  }

  depends_on = [
    google_secret_manager_secret_iam_member.db_password,
    google_secret_manager_secret_version.db_password,
    google_secret_manager_secret_iam_member.app_login,
    google_secret_manager_secret_version.app_login,
    google_project_iam_member.sql_client,
    google_sql_database.databases,
    google_sql_user.app,
  ]
}
