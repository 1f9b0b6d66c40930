# Sourced by the scripts: the closed-network, telemetry-off environment the project runs in.
export HF_HUB_OFFLINE=1
export MLFLOW_DISABLE_TELEMETRY=true
export DVC_NO_ANALYTICS=1
export DAGSTER_DISABLE_TELEMETRY=1
export DO_NOT_TRACK=1
export PYTHONUNBUFFERED=1
