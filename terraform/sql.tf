# Cloud SQL for PostgreSQL: private IP only (no public IP, so no authorized networks), TLS
# required, daily backups with point-in-time recovery, deletion protection. Databases for MLflow
# and the app's prediction store (Airflow's own database is managed by Composer).

locals {
  db_user = "composer_id"
  # Clients on Cloud Run connect through the Cloud SQL connector's unix socket (/cloudsql);
  # the password comes from Secret Manager as PGPASSWORD, so no URL contains a secret.
  db_socket       = "/cloudsql/${google_sql_database_instance.main.connection_name}"
  mlflow_db_url   = "postgresql+psycopg://${local.db_user}@/mlflow?host=${local.db_socket}"
  app_db_url      = "postgresql+psycopg://${local.db_user}@/predictions?host=${local.db_socket}"
  composer_db_url = "postgresql+psycopg://${local.db_user}@${google_sql_database_instance.main.private_ip_address}:5432/predictions?sslmode=require"
}

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV_GCP_6:ssl_mode ENCRYPTED_ONLY enforces TLS on every connection. Client certificates (the only mode this check accepts) would lock out the Composer workers, which connect by private IP with sslmode=require; the Cloud Run services use the IAM-authorised Cloud SQL connector.
  #checkov:skip=CKV_GCP_79:PostgreSQL 17 is the major version of the compose stack (postgres:17.6) and of what the code is tested against; moving to 18 is a deliberate upgrade, not a default.
  #checkov:skip=CKV2_GCP_13:log_duration writes a line for every statement (MLflow and the app issue many small ones): Cloud Logging cost without value. Slow statements show in Query Insights, which is on.
  name                = "${var.name_prefix}-pg"
  region              = var.region
  database_version    = "POSTGRES_17"
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.sql_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.sql_availability_type
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = var.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.main.id
      ssl_mode                                      = "ENCRYPTED_ONLY"
      enable_private_path_for_google_cloud_services = true
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "02:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.sql_backup_retention
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl" # schema changes only: "all" would log the data too
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "databases" {
  for_each = toset(["mlflow", "predictions"])
  name     = each.value
  instance = google_sql_database_instance.main.name
}

resource "random_password" "db" {
  length  = 32
  special = false # it also travels in connection strings; 32 alphanumerics are ~190 bits
}

resource "google_sql_user" "app" {
  name     = local.db_user
  instance = google_sql_database_instance.main.name
  password = random_password.db.result
}

resource "google_secret_manager_secret" "db_password" {
  secret_id = "${var.name_prefix}-db-password"
  labels    = { purpose = "cloud-sql" }

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "db_password" {
  secret      = google_secret_manager_secret.db_password.id
  secret_data = random_password.db.result
}
