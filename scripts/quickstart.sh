#!/usr/bin/env bash
# Quickstart, command 1: set up .venv (first time) and run the embedded default's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
source scripts/env.sh
# The main job runs through Dagster, in process; runs are kept under .dagster_home.
exec .venv/bin/python -m orchestration.main_job --params params.yaml --out "${VEC2FACE_OUT:-outputs/tiny}" "$@"
