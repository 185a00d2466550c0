# syntax=docker/dockerfile:1
# MLflow tracking server + model registry: PostgreSQL backend, artifacts proxied by the server
# (--serve-artifacts), to a local volume (compose) or a GCS bucket (Cloud Run).
#   docker build -f deploy/mlflow.Dockerfile -t composer-id/mlflow:dev .
# The command (flags, backend URI) is set by docker-compose.yml / terraform, not here.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

# Same pins as requirements.txt (mlflow, psycopg); google-cloud-storage for gs:// artifacts.
RUN pip install "mlflow==3.17.2" "psycopg[binary]==3.3.9" "google-cloud-storage==3.17.1"

RUN groupadd --system --gid 10002 mlflow \
    && useradd --system --uid 10002 --gid mlflow --home-dir /home/mlflow --create-home \
       --shell /usr/sbin/nologin mlflow \
    && mkdir -p /mlartifacts \
    && chown mlflow:mlflow /mlartifacts

USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]
