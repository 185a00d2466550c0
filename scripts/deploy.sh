#!/usr/bin/env bash
# `make deploy`: build and push the images, terraform apply, upload the DAGs to Composer.
# Step by step (and what each variable means): terraform/README.md.
#
#   PROJECT_ID=my-project REGION=europe-west1 make deploy
#
# Variables (environment): PROJECT_ID (default: gcloud's configured project), REGION
# (europe-west1), NAME_PREFIX (composer-id), IMAGE_TAG (the git commit; "-dirty-<time>" is added
# for uncommitted changes), TF_STATE_BUCKET (<project>-tfstate, created if missing),
# TF_VAR_FILE (an optional *.tfvars file), AUTO_APPROVE=1 (apply without asking).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

# --- Tools --------------------------------------------------------------------------------------
missing=()
command -v docker >/dev/null 2>&1 || missing+=("docker: builds and pushes the images. Install Docker Engine: https://docs.docker.com/engine/install/")
command -v gcloud >/dev/null 2>&1 || missing+=("gcloud: authenticates and uploads the DAGs. Install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install")
command -v terraform >/dev/null 2>&1 || missing+=("terraform (>= 1.9): creates the infrastructure. Install: https://developer.hashicorp.com/terraform/install")
command -v git >/dev/null 2>&1 || missing+=("git: names the image tag after the commit")
if ((${#missing[@]})); then
  printf 'deploy: missing tools:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
docker info >/dev/null 2>&1 \
  || die "docker is installed but its engine is not reachable (is the daemon running, may this user use it?)"
gcloud auth print-access-token >/dev/null 2>&1 \
  || die "gcloud is not logged in: run 'gcloud auth login' and 'gcloud auth application-default login'"

# --- Settings -----------------------------------------------------------------------------------
PROJECT_ID="${PROJECT_ID:-$(gcloud config get-value project 2>/dev/null || true)}"
[[ -n "$PROJECT_ID" ]] || die "set PROJECT_ID (or run 'gcloud config set project PROJECT_ID')"
REGION="${REGION:-europe-west1}"
NAME_PREFIX="${NAME_PREFIX:-composer-id}"
TF_STATE_BUCKET="${TF_STATE_BUCKET:-${PROJECT_ID}-tfstate}"
if [[ -z "${IMAGE_TAG:-}" ]]; then
  IMAGE_TAG="$(git rev-parse --short=12 HEAD)"
  if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
    IMAGE_TAG="${IMAGE_TAG}-dirty-$(date -u +%Y%m%d%H%M%S)"
  fi
fi
[[ "$IMAGE_TAG" != "latest" ]] || die "IMAGE_TAG must not be 'latest' (tags are immutable here)"
REGISTRY_HOST="${REGION}-docker.pkg.dev"
REGISTRY="${REGISTRY_HOST}/${PROJECT_ID}/${NAME_PREFIX}"

tf_vars=(-var "project_id=${PROJECT_ID}" -var "region=${REGION}"
  -var "name_prefix=${NAME_PREFIX}" -var "image_tag=${IMAGE_TAG}")
if [[ -n "${TF_VAR_FILE:-}" ]]; then
  [[ -f "$TF_VAR_FILE" ]] || die "TF_VAR_FILE=$TF_VAR_FILE does not exist"
  tf_vars+=(-var-file "$(realpath "$TF_VAR_FILE")")
fi
approve=()
[[ "${AUTO_APPROVE:-0}" == "1" ]] && approve=(-auto-approve)
tf() { terraform -chdir=terraform "$@"; }

say "Project ${PROJECT_ID}, region ${REGION}, prefix ${NAME_PREFIX}, image tag ${IMAGE_TAG}"

# --- 1. Terraform state bucket -----------------------------------------------------------------
if ! gcloud storage buckets describe "gs://${TF_STATE_BUCKET}" --project "$PROJECT_ID" >/dev/null 2>&1; then
  say "Creating the terraform state bucket gs://${TF_STATE_BUCKET}"
  gcloud storage buckets create "gs://${TF_STATE_BUCKET}" --project "$PROJECT_ID" \
    --location "$REGION" --uniform-bucket-level-access --public-access-prevention
  gcloud storage buckets update "gs://${TF_STATE_BUCKET}" --versioning
fi

say "terraform init"
tf init -input=false -reconfigure \
  -backend-config="bucket=${TF_STATE_BUCKET}" -backend-config="prefix=${NAME_PREFIX}"

# --- 2. The image repository first (Cloud Run needs the images to exist) -----------------------
say "Enabling the APIs and creating the Artifact Registry repository"
tf apply -input=false "${approve[@]}" "${tf_vars[@]}" \
  -target=google_project_service.apis -target=google_artifact_registry_repository.images

# --- 3. Build and push --------------------------------------------------------------------------
say "Building and pushing ${REGISTRY}/{app,mlflow}:${IMAGE_TAG}"
gcloud auth configure-docker "$REGISTRY_HOST" --quiet
for image in app mlflow; do
  docker build --platform linux/amd64 -f "deploy/${image}.Dockerfile" \
    -t "${REGISTRY}/${image}:${IMAGE_TAG}" .
  docker push "${REGISTRY}/${image}:${IMAGE_TAG}"
done

# --- 4. Everything else -------------------------------------------------------------------------
say "terraform apply (Cloud SQL, Cloud Run, Composer: the first run takes 30-60 minutes)"
tf apply -input=false "${approve[@]}" "${tf_vars[@]}"

# --- 5. DAGs, plugins, core and the demo corpus to the Composer bucket --------------------------
dags_prefix="$(tf output -raw composer_dag_gcs_prefix)"
[[ "$dags_prefix" == gs://*/dags ]] || die "unexpected composer_dag_gcs_prefix: ${dags_prefix}"
bucket="${dags_prefix%/dags}"
skip='(^|.*/)__pycache__/.*|.*\.pyc$'
say "Uploading dags/, core/, plugins/ and data/demo/ to ${bucket}"
gcloud storage rsync dags "${dags_prefix}" --recursive --exclude="${skip}|^core/.*|^\.airflowignore$"
# core is imported by the DAGs and the plugin; it sits beside the DAGs (on the workers' path).
gcloud storage rsync core "${dags_prefix}/core" --recursive --delete-unmatched-destination-objects \
  --exclude="${skip}"
{ [[ -f dags/.airflowignore ]] && cat dags/.airflowignore; printf 'core/\n'; } \
  | gcloud storage cp - "${dags_prefix}/.airflowignore"
gcloud storage rsync plugins "${bucket}/plugins" --recursive --delete-unmatched-destination-objects \
  --exclude="${skip}"
gcloud storage rsync data/demo "${bucket}/data/demo" --recursive --delete-unmatched-destination-objects

say "Done"
tf output
