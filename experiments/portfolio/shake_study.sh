#!/usr/bin/env bash
# Issue 24 item 5, calibration half: the portfolio on the 8 data=shake crops (central 128x128,
# never Levin). Each image: SelfDeblur and the supervised weak_rec_es, SEEDS seeds each, and the
# map g's own estimate; every candidate is kept with its scores and (ground truth known) PSNR, so
# that experiments/arbiter/selection.py --portfolio can measure every criterion afterwards.
#
# JOBS processes share one run folder: each takes the next image that no other holds (the
# per-image locks), one thread each. Re-running the same command resumes per candidate.
#   JOBS=2 SEEDS=1 ITERATIONS=1000 bash experiments/portfolio/shake_study.sh
# Cost measured on a 2-core AMD EPYC (no AVX-512): 0.71 s/it at one thread for the 128 crop
# (fp32), so a 1000-iteration candidate is ~12 min of a core.
set -euo pipefail
ROOT=${ROOT:-outputs/portfolio_shake}
SEEDS=${SEEDS:-1}
ITERATIONS=${ITERATIONS:-1000}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-python}   # the virtual environment's python (.venv/bin/python) if not activated
mkdir -p "$ROOT"
for job in $(seq "$JOBS"); do
    OMP_NUM_THREADS=1 "$PYTHON" -m weakdeblur.run +exp=portfolio data=shake data.crop=128 \
        portfolio.seeds="$SEEDS" optim.iterations="$ITERATIONS" optim.log_every=100 \
        optim.snapshot_every=0 threads=1 logger=none progress=false metrics.lpips=false \
        hydra.run.dir="$ROOT" > "$ROOT/job$job.log" 2>&1 &
    sleep 20  # the first job takes the first image before the next looks
done
wait || true
"$PYTHON" experiments/arbiter/selection.py --portfolio "$ROOT" --json "$ROOT/selection.json"
