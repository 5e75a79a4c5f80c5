#!/usr/bin/env bash
# Issue 25 item 3: fp32 against the fastest bf16 configuration, decided by paired statistics.
# The paper configuration (+exp=selfdeblur) on the 8 data=shake crops (central 128x128, never
# Levin), 1500 iterations, 4 seeds per crop, two arms:
#   fp32     solver.bf16=false solver.channels_last=false
#   bf16_cl  solver.bf16=true  solver.channels_last=true   (the fastest safe switches measured)
# then `weakdeblur.report --paired`: per-crop means over the 4 seeds, the paired difference
# bf16_cl - fp32 with a bootstrap 95 % interval over crops, wins and losses, seed spreads.
# Decision rule (issue 25): if the interval lies within +-0.3 dB, the fast configuration becomes
# the default where the CPU/GPU has native bf16; otherwise it stays off.
#
# Cost on a 2-core AMX CPU at one thread per job: fp32 ~0.55 s/it, bf16_cl ~0.25 s/it at the
# 128 crop, so 32 fp32 runs ~7.3 h and 32 bf16 runs ~3.3 h of one core; JOBS=2 runs two
# one-thread jobs at once (~5.5 h wall). Every (arm, seed) is its own folder and resumes per
# image: re-running the same command skips finished images.
#   OMP_NUM_THREADS=1 JOBS=2 bash experiments/bf16_quality/paired_study.sh
set -euo pipefail
ROOT=${ROOT:-outputs/bf16_paired}
SEEDS=${SEEDS:-"0 1 2 3"}
ITERATIONS=${ITERATIONS:-1500}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-python}   # the virtual environment's python (.venv/bin/python) if not activated
run_one() {  # arm seed
    local arm=$1 seed=$2 switches
    case $arm in
        fp32) switches="solver.bf16=false solver.channels_last=false" ;;
        bf16_cl) switches="solver.bf16=true solver.channels_last=true" ;;
    esac
    # shellcheck disable=SC2086
    "$PYTHON" -m weakdeblur.run +exp=selfdeblur data=shake data.crop=128 \
        optim.iterations="$ITERATIONS" optim.log_every=100 optim.snapshot_every=0 \
        $switches seed="$seed" threads=1 logger=none progress=false metrics.lpips=false \
        hydra.run.dir="$ROOT/$arm/seed$seed" > "$ROOT/$arm.seed$seed.log" 2>&1 || true
}
export -f run_one
export ROOT ITERATIONS PYTHON
mkdir -p "$ROOT"
for seed in $SEEDS; do for arm in bf16_cl fp32; do echo "$arm $seed"; done; done |
    xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
"$PYTHON" -m weakdeblur.report "$ROOT" --no-figures --paired \
    "selfdeblur solver.bf16=false solver.channels_last=false" \
    "selfdeblur solver.bf16=true solver.channels_last=true"
