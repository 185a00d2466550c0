variable "project_id" {
  description = "Google Cloud project that receives every resource."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits, hyphens), not a name or number."
  }
}

variable "region" {
  description = "Region for Cloud Run, Cloud SQL, Composer, Artifact Registry and the buckets."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region such as europe-west1 (not a zone such as europe-west1-b)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (services, service accounts, buckets, instance)."
  type        = string
  default     = "composer-id"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4-16 lowercase letters, digits or hyphens, starting with a letter (service account IDs are limited to 30 characters)."
  }
}

variable "labels" {
  description = "Labels added to every resource that supports them."
  type        = map(string)
  default = {
    app        = "composer-id"
    managed-by = "terraform"
  }

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys and values must be lowercase letters, digits, underscores or hyphens (keys start with a letter)."
  }
}

variable "image_tag" {
  description = "Tag of the app and MLflow images in Artifact Registry (make deploy passes the git commit)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, immutable Docker tag (a git sha or a date), never \"latest\"."
  }
}

variable "app_public" {
  description = "Let anyone on the internet call the app (an allUsers run.invoker binding). Off by default: callers then need run.invoker. When on, the app's login page is switched on with a generated password kept in Secret Manager (output app_login_secret)."
  type        = bool
  default     = false
}

variable "app_login_user" {
  description = "User name of the app's login page when app_public = true (the password is generated and stored in Secret Manager)."
  type        = string
  default     = "composer"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,32}$", var.app_login_user))
    error_message = "app_login_user must be 3-32 letters, digits, '_', '.' or '-' (no ':')."
  }
}

variable "app_min_instances" {
  description = "Minimum app instances kept warm (0 scales to zero; 1 avoids cold starts)."
  type        = number
  default     = 0

  validation {
    condition     = var.app_min_instances >= 0 && var.app_min_instances <= 10 && floor(var.app_min_instances) == var.app_min_instances
    error_message = "app_min_instances must be a whole number between 0 and 10."
  }
}

variable "app_max_instances" {
  description = "Maximum app instances (caps cost and the load on the database)."
  type        = number
  default     = 3

  validation {
    condition     = var.app_max_instances >= 1 && var.app_max_instances <= 100 && floor(var.app_max_instances) == var.app_max_instances && var.app_max_instances >= var.app_min_instances
    error_message = "app_max_instances must be a whole number between 1 and 100, and at least app_min_instances."
  }
}

variable "app_concurrency" {
  description = "Requests one app instance handles at once (predictions are CPU-bound: keep it small)."
  type        = number
  default     = 4

  validation {
    condition     = var.app_concurrency >= 1 && var.app_concurrency <= 80
    error_message = "app_concurrency must be between 1 and 80."
  }
}

variable "mlflow_ingress" {
  description = "Who may reach the MLflow server's network endpoint: only the project's VPC (INTERNAL_ONLY) or also an internal load balancer."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.mlflow_ingress)
    error_message = "mlflow_ingress must be INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER (never public)."
  }
}

variable "subnet_cidr" {
  description = "Primary range of the VPC subnet used by Cloud Run (Direct VPC egress) and Composer."
  type        = string
  default     = "10.20.0.0/20"

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr)) && tonumber(split("/", var.subnet_cidr)[1]) <= 24
    error_message = "subnet_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "sql_tier" {
  description = "Cloud SQL machine tier (db-custom-CPUS-MEMORY_MB)."
  type        = string
  default     = "db-custom-1-3840"

  validation {
    condition     = can(regex("^db-(custom-[0-9]+-[0-9]+|perf-optimized-N-[0-9]+|f1-micro|g1-small)$", var.sql_tier))
    error_message = "sql_tier must be a Cloud SQL tier such as db-custom-1-3840."
  }
}

variable "sql_availability_type" {
  description = "ZONAL (cheaper) or REGIONAL (high availability, a standby in another zone)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.sql_availability_type)
    error_message = "sql_availability_type must be ZONAL or REGIONAL."
  }
}

variable "sql_backup_retention" {
  description = "Automated Cloud SQL backups kept (one a day)."
  type        = number
  default     = 14

  validation {
    condition     = var.sql_backup_retention >= 7 && var.sql_backup_retention <= 365
    error_message = "sql_backup_retention must be between 7 and 365."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the Cloud SQL instance and the Cloud Run services (set false, apply, then destroy)."
  type        = bool
  default     = true
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept in the versioned buckets."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650
    error_message = "noncurrent_version_days must be between 1 and 3650."
  }
}

variable "composer_image_version" {
  description = "Cloud Composer 3 image: composer-3-airflow-3.X.Y[-build.N] (the DAGs need Airflow 3; pin a build for repeatable environments)."
  type        = string
  default     = "composer-3-airflow-3.3.1-build.2"

  validation {
    condition     = can(regex("^composer-3-airflow-3\\.[0-9]+\\.[0-9]+(-build\\.[0-9]+)?$", var.composer_image_version))
    error_message = "composer_image_version must be a Cloud Composer 3 image with Airflow 3, e.g. composer-3-airflow-3.3.1-build.2."
  }
}

variable "composer_environment_size" {
  description = "Size of the Composer environment's managed infrastructure (database, web server)."
  type        = string
  default     = "ENVIRONMENT_SIZE_SMALL"

  validation {
    condition     = contains(["ENVIRONMENT_SIZE_SMALL", "ENVIRONMENT_SIZE_MEDIUM", "ENVIRONMENT_SIZE_LARGE"], var.composer_environment_size)
    error_message = "composer_environment_size must be ENVIRONMENT_SIZE_SMALL, _MEDIUM or _LARGE."
  }
}

variable "model_name" {
  description = "Registered model the app serves and the train DAG registers (COMPOSER_MODEL_NAME)."
  type        = string
  default     = "composer-classifier"

  validation {
    condition     = length(var.model_name) > 0 && length(var.model_name) <= 100
    error_message = "model_name must be 1-100 characters."
  }
}

variable "champion_alias" {
  description = "Model alias the app serves and the train DAG moves on promotion (COMPOSER_CHAMPION_ALIAS)."
  type        = string
  default     = "champion"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{0,62}$", var.champion_alias))
    error_message = "champion_alias must start with a letter and contain letters, digits, '_' or '-'."
  }
}
