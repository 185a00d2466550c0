# syntax=docker/dockerfile:1
# Airflow 3 (api-server, scheduler with the LocalExecutor, dag-processor, triggerer) with the
# project's runtime requirements and core. dags/ and plugins/ are mounted by docker-compose.yml.
#   docker build -f deploy/airflow.Dockerfile -t composer-id/airflow:dev .
FROM apache/airflow:3.3.2-python3.11

USER root
# ffmpeg for clips libsndfile cannot decode (featurizing uploaded/feedback audio).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /opt/composer-id /opt/airflow/auth /opt/airflow/composer-home /opt/numba-cache \
    && chown -R airflow:0 /opt/composer-id /opt/airflow/auth /opt/airflow/composer-home \
       /opt/numba-cache

USER airflow
ENV PYTHONPATH=/opt/composer-id \
    COMPOSER_HOME=/opt/airflow/composer-home \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    MPLCONFIGDIR=/tmp/matplotlib

# The runtime part of requirements.txt: everything above its "# Tooling" section (pytest, ruff,
# playwright, ... stay out). apache-airflow is pinned to the image's own version on the same line
# so pip can never move it.
COPY requirements.txt /tmp/requirements.txt
RUN sed '/^# Tooling/,$d' /tmp/requirements.txt > /tmp/requirements-runtime.txt \
    && pip install --no-cache-dir "apache-airflow==3.3.2" -r /tmp/requirements-runtime.txt

COPY --chown=airflow:0 core /opt/composer-id/core
COPY --chown=airflow:0 data/demo /opt/composer-id/data/demo

# Warm the numba cache once, at build time (the first featurization otherwise pays ~25 s).
RUN python -c "import numpy as np; from core import features; from core.config import FeatureConfig; \
c = FeatureConfig(); y = 0.1 * np.random.default_rng(0).standard_normal(c.sample_rate * 3); \
v = features.extract(y.astype(np.float32), c); print('numba cache warm:', v.shape)"
