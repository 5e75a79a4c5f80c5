#!/usr/bin/env bash
# The CPU-sized Levin ablations behind cpu_200/ and cpu_1000/ here, exactly as run:
# 2 Levin images (im1_kernel1_img, im2_kernel5_img), central 64x64 crops, SelfDeblur with
# the paper generator vs the small one, 200 and 1000 iterations; then the reports.
# Run from the repository root with the package installed (make install).
set -euo pipefail
export OMP_NUM_THREADS=1

nice -n 10 python -m weakdeblur.run -m +exp=selfdeblur generator=selfdeblur,small \
    data=levin data.crop=64 'data.images=[im1_kernel1_img,im2_kernel5_img]' \
    optim.iterations=200 optim.log_every=20 optim.snapshot_every=100 \
    threads=1 progress=false logger=none run_name=levin_ablation_cpu
python -m weakdeblur.report multirun/levin_ablation_cpu --out experiments/levin_ablation/cpu_200

nice -n 10 python -m weakdeblur.run -m +exp=selfdeblur generator=selfdeblur,small \
    data=levin data.crop=64 'data.images=[im1_kernel1_img,im2_kernel5_img]' \
    optim.iterations=1000 optim.log_every=50 optim.snapshot_every=500 \
    threads=1 progress=false logger=none run_name=levin_ablation_cpu_1000
python -m weakdeblur.report multirun/levin_ablation_cpu_1000 --out experiments/levin_ablation/cpu_1000
