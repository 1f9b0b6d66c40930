# The pipeline image: Dagster's code server, its run and step workers (k8s_job_executor), and
# Celery workers all run it. Build from the repository root:
#   docker build -t vec2face-pipeline:0.1.0 .
# TORCH_INDEX picks the torch build (CUDA 12.8 wheels by default; a CPU-only image:
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu).
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_DISABLE_TELEMETRY=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DVC_NO_ANALYTICS=1 \
    DO_NOT_TRACK=1 \
    DAGSTER_HOME=/opt/dagster/home

# git: DVC records outputs in a git repository; libgomp1: torch's CPU threads
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* libgomp1=12.2.* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# torch first, from the index of the wanted build, at the version the project pins
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY vec2face ./vec2face
COPY assets_defs ./assets_defs
COPY orchestration ./orchestration
# the project itself: its dependencies are pinned in pyproject.toml, not here
# hadolint ignore=DL3013
RUN pip install ".[pipeline,scale]"
COPY params.yaml dvc.yaml .dvcignore ./
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml

RUN useradd --create-home --uid 1000 vec2face \
    && mkdir -p /data \
    && chown -R vec2face /app /data "${DAGSTER_HOME}"
USER 1000

# the code server the Helm chart's user deployment runs (deploy/values.yaml)
EXPOSE 3030
CMD ["dagster", "api", "grpc", "-m", "orchestration.definitions", "-h", "0.0.0.0", "-p", "3030"]
