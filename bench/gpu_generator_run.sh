#!/usr/bin/env bash
# One prepared GPU session for the generator (issue 4): rebuild the tiny profile's training
# data on the device, train two generators side by side on the one GPU under a wall-clock
# budget, and score every epoch checkpoint with the judge on 200 toy-LFW pairs.
#
#   run A: the tiny generator with the longest CPU run's recipe (fr_perceptual 0.5, adaptive
#          GAN from mid-run), for 4x the epochs that 2 CPU cores allowed;
#   run B: the paper-size generator (vit_base_patch16, patchgan) with the same losses.
#
# Inputs (DEV, default .devdata, written by bench/gpu_generator_prepare.py): fr_teacher/ and
# fr_judge/ (backbone.pt + backbone.json), bins/lfw.bin (a prefix of the toy LFW set),
# params_<run>.yaml (params.yaml with the run's generator section, FR checkpoints in DEV).
# Give the whole call's timeout room for the setup: rendering + extraction took 36 s on one
# device and 54 s on the next.
# Outputs under RUN_DIR (default outputs/gpu_run): the runs' folders, q_<run>_<epoch>/ with
# quality.json and PNGs. Environment: TRAIN_SECONDS (wall-clock budget of the trainings,
# default 400), RUNS (default "a b"), EVAL_LAST (score only the last N checkpoints of each
# run; default 0: all), WORKERS (render workers, default all cores), DEVICE (default cuda).
set -uo pipefail
DEV=${DEV:-.devdata}
OUT=${RUN_DIR:-outputs/gpu_run}
RUNS=${RUNS:-a b}
EVAL_LAST=${EVAL_LAST:-0}
TRAIN_SECONDS=${TRAIN_SECONDS:-400}
WORKERS=${WORKERS:-0}
DEVICE=${DEVICE:-cuda}
PAIRS=${PAIRS:-200}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true
V="python3 -m vec2face.cli.main"
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

stamp "render the webface pool"
$V toyfaces --pool webface --identities "${IDS:-600}" --images "${IMGS:-40}" --seed 0 \
    --workers "$WORKERS" --out "$OUT/world/webface" --quiet || exit 1
stamp "subset"
$V subset "$OUT/world/webface" --params "$DEV/params_a.yaml" --out "$OUT/webface_subset" || exit 1
stamp "teacher features + training LMDB"
$V fr extract --role teacher --params "$DEV/params_a.yaml" --data "$OUT/webface_subset" \
    --out "$OUT/training_data" --no-flip --device "$DEVICE" \
    --write-training-lmdb "$OUT/training_data/train.lmdb" || exit 1

stamp "train $RUNS side by side (budget ${TRAIN_SECONDS} s)"
for run in $RUNS; do
    OMP_NUM_THREADS=4 timeout "$TRAIN_SECONDS" $V generator train --profile tiny \
        --params "$DEV/params_$run.yaml" --data "$OUT/training_data/train.lmdb" \
        --out "$OUT/run_$run" --device "$DEVICE" > "$OUT/train_$run.log" 2>&1 &
done
wait
stamp "trainings ended"
for run in $RUNS; do
    echo "run $run: per-epoch tracker metrics"
    python3 - "$OUT/train_$run.log" <<'PY'
import json, re, sys
text = open(sys.argv[1], errors="replace").read()
for m in re.finditer(r'\{"step": \d+, "tracker": "metrics".*?\}\}', text):
    d = json.loads(m.group(0)); v = d["values"]
    print(d["step"], " ".join(f"{k}={v[k]:.4g}" for k in ("epoch_time_s", "images_per_s", "mse", "lpips", "identity", "gan_weight", "grad_overflows") if k in v))
for line in text.splitlines()[-200:]:
    if "Error" in line or "error:" in line:
        print(line[-300:])
PY
done

# score the epoch checkpoints, six at a time
for run in $RUNS; do
    ls "$OUT"/run_$run/checkpoints/checkpoint_*.pt 2>/dev/null | sort \
        | { if [ "$EVAL_LAST" -gt 0 ]; then tail -n "$EVAL_LAST"; else cat; fi; }
done | xargs -P 6 -I{} sh -c '
    ck={}; run=$(basename $(dirname $(dirname $ck)) | sed s/run_//); e=$(basename $ck .pt | sed s/checkpoint_//)
    python3 bench/bench_generator_quality.py --generator $ck --teacher '"$DEV"'/fr_teacher \
        --judge '"$DEV"'/fr_judge --bins '"$DEV"'/bins --pairs '"$PAIRS"' --device '"$DEVICE"' \
        --threads 2 --out '"$OUT"'/q_${run}_$e > '"$OUT"'/q_${run}_$e.log 2>&1 || echo "scoring $ck failed"'
for q in "$OUT"/q_*/quality.json; do echo "$q $(tr -d '\n ' < "$q")"; done
stamp "done"
