#!/usr/bin/env bash
# Quickstart, command 1: set up .venv (first time) and run the embedded default's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
source scripts/env.sh
exec .venv/bin/vec2face run --params params.yaml --out "${VEC2FACE_OUT:-outputs/tiny}" "$@"
