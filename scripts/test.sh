#!/usr/bin/env bash
# Quickstart, command 2: set up .venv (first time) and run the test suite.
# pytest exits 5 when it collects no test; that is a failure here, like any non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
source scripts/env.sh
exec .venv/bin/python -m pytest -p no:hydra_pytest -n 2 --dist loadfile -q "$@"
