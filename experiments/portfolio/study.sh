#!/usr/bin/env bash
# Issue 24 item 5: the portfolio on 8 central 128x128 crops: DATA=shake (calibration, the
# default) or DATA=levin (evaluation only, one crop per kernel). Each image: SelfDeblur and the
# supervised weak_rec_es, SEEDS seeds each, and the map g's own estimate; every candidate is kept
# with its scores and (ground truth known) PSNR, so that experiments/arbiter/selection.py
# --portfolio can measure every criterion and arbiter afterwards.
#
# JOBS processes share one run folder: each takes the next image that no other holds (the
# per-image locks), one thread each. Re-running the same command resumes per candidate.
#   JOBS=2 SEEDS=1 ITERATIONS=1000 bash experiments/portfolio/study.sh
#   DATA=levin ROOT=outputs/portfolio_levin ITERATIONS=1500 bash experiments/portfolio/study.sh
# IMAGES (a Hydra list of image names) and EXTRA (more overrides) change the images, for example
# the low-noise shake calibration set (Levin-like noise, g right on 3 crops and wrong on 3):
#   DATA=shake EXTRA="data.noise=0.002 data.seed=200" \
#   IMAGES="[camera_k13_s200,astronaut_k17_s201,grass_k27_s205,coffee_k19_s202,rocket_k23_s204,brick_k25_s207]" \
#   ROOT=outputs/portfolio_shake_lownoise bash experiments/portfolio/study.sh
# SEEDS > 1 also writes selection_by_seed.json (each seed's one-seed portfolio, paired with
# SelfDeblur on that seed) and selection_seeds_only.json (the SelfDeblur seeds alone, no g). To
# measure pruning, add EXTRA="portfolio.prune_at=[0.3,0.6] portfolio.keep=1" (rung scores, nothing
# pruned) and replay: python experiments/portfolio/pruning.py "$ROOT" --keep 0.34,0.5
# Cost measured on a 2-core AMD EPYC (no AVX-512): 0.71 s/it at one thread for the 128 crop
# (fp32), so a 1000-iteration candidate is ~12 min of a core.
set -euo pipefail
DATA=${DATA:-shake}
ROOT=${ROOT:-outputs/portfolio_$DATA}
SEEDS=${SEEDS:-1}
ITERATIONS=${ITERATIONS:-1000}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}           # more Hydra overrides, space-separated
PYTHON=${PYTHON:-python}   # the virtual environment's python (.venv/bin/python) if not activated
case "$DATA" in
    shake) IMAGES=${IMAGES:-null} ;;
    levin) IMAGES=${IMAGES:-"[im1_kernel1_img,im2_kernel2_img,im3_kernel3_img,im4_kernel4_img,im1_kernel5_img,im2_kernel6_img,im3_kernel7_img,im4_kernel8_img]"} ;;
    *) echo "DATA: shake or levin" >&2; exit 2 ;;
esac
mkdir -p "$ROOT"
for job in $(seq "$JOBS"); do
    OMP_NUM_THREADS=1 "$PYTHON" -m weakdeblur.run +exp=portfolio data="$DATA" data.crop=128 data.images="$IMAGES" \
        portfolio.seeds="$SEEDS" portfolio.supervisor_candidate=true optim.iterations="$ITERATIONS" optim.log_every=100 \
        optim.snapshot_every=0 threads=1 logger=none progress=false metrics.lpips=false \
        hydra.run.dir="$ROOT" $EXTRA > "$ROOT/job$job.log" 2>&1 &
    sleep 20  # the first job takes the first image before the next looks
done
wait || true
"$PYTHON" experiments/arbiter/selection.py --portfolio "$ROOT" --json "$ROOT/selection.json"
if [ "$SEEDS" -gt 1 ]; then  # S one-seed draws per image, and the SelfDeblur seeds alone
    "$PYTHON" experiments/arbiter/selection.py --portfolio "$ROOT" --by-seed --json "$ROOT/selection_by_seed.json"
    "$PYTHON" experiments/arbiter/selection.py --portfolio "$ROOT" --arms selfdeblur --json "$ROOT/selection_seeds_only.json"
fi
