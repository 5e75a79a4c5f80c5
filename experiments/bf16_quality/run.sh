#!/usr/bin/env bash
# Issue 13: is solver.bf16 safe to turn on by default? Three runs of the paper configuration on
# 4 Levin crops (central 128x128, offset 63), 1500 iterations (schedule scaled: MSE to 300,
# lr halved at 600/900/1200), logging PSNR every 50 iterations:
#   fp32 seed 0, bf16 seed 0, and fp32 seed 1 (the seed-to-seed spread bf16 is judged against).
# Then table.py prints final PSNR, kernel error and PSNR-curve differences.
# NOT RUN YET (no CPU time in the session that wrote it). Cost: 12 runs of 1500 iterations,
# ~0.45 s/iteration fp32 and ~0.25 s bf16 at one thread on an AVX512-BF16 CPU: ~2 h of one core.
# Run from the repository root with WEAKDEBLUR_DATA pointing at a folder holding levin/:
#   OMP_NUM_THREADS=1 bash experiments/bf16_quality/run.sh
set -euo pipefail
IMAGES=${IMAGES:-'[im1_kernel1_img,im2_kernel4_img,im3_kernel6_img,im4_kernel8_img]'}
ITERATIONS=${ITERATIONS:-1500}
ROOT=${ROOT:-outputs/bf16_quality_${ITERATIONS}}
THREADS=${THREADS:-1}
for run in "fp32_seed0 false 0" "bf16_seed0 true 0" "fp32_seed1 false 1"; do
    set -- $run
    python -m weakdeblur.run +exp=selfdeblur data=levin data.crop=128 "data.images=$IMAGES" \
        optim.iterations="$ITERATIONS" optim.log_every=50 stopping.check_every=50 \
        solver.bf16="$2" seed="$3" threads="$THREADS" logger=none progress=false \
        metrics.lpips=false hydra.run.dir="$ROOT/$1"
done
python experiments/bf16_quality/table.py "$ROOT"
