#!/usr/bin/env bash
# Paper-scale Levin ablation (not run here: this project's machine has no GPU).
# 4 presets x 32 full 255x255 Levin images, 5000 iterations each. SelfDeblur reports about
# 220 s per image on an RTX 3090, so one experiment is about 2 GPU-hours.
# weak_only, weak_rec, weak_rec_es come from the supervisor/stopping work (conf/exp/).
set -euo pipefail
# one GPU, jobs one after another (re-running the same command resumes):
python -m weakdeblur.run -m run_name=levin_ablation \
    +exp=selfdeblur,weak_only,weak_rec,weak_rec_es data=levin
# or a SLURM cluster, one GPU per job, jobs split by image for parallelism:
# python -m weakdeblur.run -m hydra/launcher=slurm hydra.launcher.partition=gpu \
#     hydra.launcher.timeout_min=240 hydra.launcher.array_parallelism=16 run_name=levin_ablation \
#     +exp=selfdeblur,weak_only,weak_rec,weak_rec_es data=levin \
#     'data.images=[im1_kernel1_img,im1_kernel2_img,im1_kernel3_img,im1_kernel4_img,im1_kernel5_img,im1_kernel6_img,im1_kernel7_img,im1_kernel8_img]',...
python -m weakdeblur.report multirun/levin_ablation --out experiments/levin_ablation/gpu
