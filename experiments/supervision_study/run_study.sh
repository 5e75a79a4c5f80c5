#!/usr/bin/env bash
# Issue 3, item 6: selfdeblur vs weak_only vs weak_rec vs oracle on 8 Levin crops (one per kernel).
# Budget: central 128x128 crops (levin-crop128 protocol), ITERATIONS iterations (default 500),
# paper generators. On the project's 2-core CPU one iteration costs ~0.4 s, so the full study is
# about 4 configs x 8 images x 500 x 0.4 s = 1.8 h (more when the machine is shared).
#   bash experiments/supervision_study/run_study.sh            # all four configs
#   ITERATIONS=300 bash experiments/supervision_study/run_study.sh
#   python experiments/supervision_study/summarize.py          # table (mean and per image)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
ITERATIONS=${ITERATIONS:-500}
THREADS=${THREADS:-2}
OUT=${OUT:-experiments/supervision_study/runs}
IMAGES="[im1_kernel1_img,im2_kernel2_img,im3_kernel3_img,im4_kernel4_img,im1_kernel5_img,im2_kernel6_img,im3_kernel7_img,im4_kernel8_img]"
for preset in selfdeblur weak_only weak_rec oracle; do
  "$PYTHON" -m weakdeblur.run +exp="$preset" data=levin data.crop=128 data.images="$IMAGES" \
    optim.iterations="$ITERATIONS" optim.snapshot_every=0 logger=none progress=false \
    threads="$THREADS" seed=0 hydra.run.dir="$OUT/$preset" || echo "$preset exited with $?"
done
"$PYTHON" experiments/supervision_study/summarize.py "$OUT"
