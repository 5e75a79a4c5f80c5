#!/usr/bin/env bash
# Issue 14, part 3: the two Levin crops of the issue (central 128x128, offset 63) to the end of
# the paper's schedule (5000 iterations) from the reference's own random start
# (seed_mode=reference). The reference script's PSNRs on these crops: im1_kernel4 28.75,
# im3_kernel6 21.02 (blurry 21.47 / 24.73); weakdeblur seed 0 (seeded): 25.25 / 36.99.
# About 35-60 min of one CPU core per crop. Run from the repository root with
# WEAKDEBLUR_DATA pointing at a folder holding levin/:
#   OMP_NUM_THREADS=1 bash experiments/reference_start/run_crops.sh
set -euo pipefail
IMAGES=${IMAGES:-'[im1_kernel4_img,im3_kernel6_img]'}
ITERATIONS=${ITERATIONS:-5000}
OUT=${OUT:-outputs/reference_start/crops_${ITERATIONS}}
python -m weakdeblur.run +exp=selfdeblur seed_mode=reference data=levin data.crop=128 \
    "data.images=$IMAGES" optim.iterations="$ITERATIONS" threads=1 logger=none progress=false \
    hydra.run.dir="$OUT"
python -m weakdeblur.report "$OUT" --out "$OUT/report"
