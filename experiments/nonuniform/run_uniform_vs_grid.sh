#!/usr/bin/env bash
# Uniform vs grid forward model on the synthetic non-uniform set, no supervisor.
# CPU-sized: 3 scenes (camera, astronaut, coffee), 80x80 crops (resize 160), camera
# rotation + translation blur in an 11x11 support, 13x13 kernels estimated, 1% noise,
# paper generators (grid: one shared MLP for 3x3 kernels), 500 iterations (schedule scaled),
# seed 0, luminance. Run from the repository root:
#   OMP_NUM_THREADS=1 nice -n 10 bash experiments/nonuniform/run_uniform_vs_grid.sh > experiments/nonuniform/log.txt 2>&1
set -euo pipefail
OUT=${OUT:-experiments/nonuniform/runs}
COMMON=(+exp=nonuniform data.size=80 'data.scenes=[camera,astronaut,coffee]' optim.iterations=500
        optim.log_every=50 optim.snapshot_every=0 logger=none progress=false metrics.lpips=false threads=1)
python -m weakdeblur.run "${COMMON[@]}" physics=uniform generator=selfdeblur experiment=nonuniform_uniform \
    hydra.run.dir="$OUT/uniform"
python -m weakdeblur.run "${COMMON[@]}" physics=grid generator=grid experiment=nonuniform_grid \
    hydra.run.dir="$OUT/grid"
