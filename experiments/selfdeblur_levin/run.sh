#!/usr/bin/env bash
# Faithful SelfDeblur on Levin crops (the CPU protocol: central 128x128 crops, offset 63,
# Levin scoring with cut 15 / max shift 10), the paper configuration with the budget reduced
# to 1500 iterations (schedule scaled: MSE until 300, lr halved at 600/900/1200).
# Run from the repository root with WEAKDEBLUR_DATA pointing at a folder holding levin/:
#   bash experiments/selfdeblur_levin/run.sh
set -euo pipefail
IMAGES=${IMAGES:-'[im1_kernel1_img,im2_kernel4_img]'}
ITERATIONS=${ITERATIONS:-1500}
OUT=${OUT:-outputs/selfdeblur_levin_${ITERATIONS}}
python -m weakdeblur.run +exp=selfdeblur data=levin data.crop=128 optim.iterations="$ITERATIONS" \
    "data.images=$IMAGES" logger=none progress=false hydra.run.dir="$OUT"
python -m weakdeblur.report "$OUT" --out "$OUT/report"
