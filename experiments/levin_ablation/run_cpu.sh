#!/usr/bin/env bash
# The CPU-sized Levin ablation behind results.md here (2 Levin images, central 64x64 crops,
# 200 iterations, paper vs small generator), then the report. Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1
nice -n 10 python -m weakdeblur.run -m +exp=selfdeblur generator=selfdeblur,small \
    data=levin data.crop=64 'data.images=[im1_kernel1_img,im2_kernel5_img]' \
    optim.iterations=200 optim.log_every=20 optim.snapshot_every=100 \
    threads=1 progress=false logger=none run_name=levin_ablation_cpu
python -m weakdeblur.report multirun/levin_ablation_cpu --out experiments/levin_ablation/cpu
