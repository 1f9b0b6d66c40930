#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install vec2face.
# torch/torchvision come first, pinned to the builds on this machine's disk, so that no
# resolver later fetches a multi-GB torch. Reinstalls only when the install inputs change.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "error: Python >= 3.11 not found (set PYTHON=...)" >&2; exit 2; }

VENV=.venv
stamp_now=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.vec2face-stamp" 2>/dev/null)" = "$stamp_now" ]; then
  exit 0
fi

echo "setting up $VENV (first run takes a few minutes) ..." >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_q() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; }
pip_q --upgrade "pip>=24"
pip_q "torch==2.14.1" "torchvision==0.29.1"
pip_q -e ".[pipeline,scale,dev]"
# dvc pulls hydra-core, which pins antlr4 4.9 and breaks dagster; 4.13.2 serves both. pip
# then reports hydra-core/omegaconf as conflicting, which is expected here: say so once
# instead of printing pip's resolver ERROR to a new user.
pip_q "antlr4-python3-runtime==4.13.2" | grep -v -e "dependency resolver does not currently" \
  -e "requires antlr4-python3-runtime==4.9" || true
echo "note: antlr4-python3-runtime 4.13.2 replaces the 4.9 that hydra-core/omegaconf pin (dvc's" \
  "dependency); both work with it, so 'pip check' reports a known, harmless conflict" >&2
"$VENV/bin/python" -c "import torch, torchvision, vec2face, dagster, mlflow, dvc, lmdb, pyarrow" \
  || { echo "error: environment check failed in $VENV" >&2; exit 2; }
echo "$stamp_now" > "$VENV/.vec2face-stamp"
