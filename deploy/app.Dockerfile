# syntax=docker/dockerfile:1
# The Gradio app: core + gradio_app and nothing else (no Airflow, no tooling).
#   docker build -f deploy/app.Dockerfile -t composer-id/app:dev .
# Runs as an unprivileged user; listens on $PORT (Cloud Run sets it; 7860 by default).
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    COMPOSER_HOME=/var/lib/composer \
    COMPOSER_APP_HOST=0.0.0.0 \
    PORT=7860 \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    GRADIO_TEMP_DIR=/var/lib/composer/gradio \
    GRADIO_ANALYTICS_ENABLED=False

# ffmpeg decodes what libsndfile cannot (m4a, webm from browsers' microphones, ...).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /app /var/lib/composer /opt/numba-cache \
    && chown app:app /var/lib/composer /opt/numba-cache

WORKDIR /app
# requirements-app.lock: requirements-app.txt (core + the "app" extra) with every transitive
# package pinned and hashed, at the versions of requirements.lock (scripts/lock_requirements.sh).
COPY requirements-app.lock ./
RUN pip install --require-hashes -r requirements-app.lock

COPY core ./core
COPY gradio_app ./gradio_app
# The demo clips the page offers as examples (26 MB, CC BY-SA 3.0 DE: see its LICENSE.md).
COPY data/demo ./data/demo

USER app
# Compile librosa's numba kernels once, at build time, into NUMBA_CACHE_DIR: without this the
# first prediction in every new container pays ~25 s.
RUN python -c "import numpy as np; from core import features; from core.config import FeatureConfig; \
c = FeatureConfig(); y = 0.1 * np.random.default_rng(0).standard_normal(c.sample_rate * 3); \
v = features.extract(y.astype(np.float32), c); print('numba cache warm:', v.shape)"

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"7860\")}/', timeout=4)"
CMD ["python", "-m", "gradio_app"]
