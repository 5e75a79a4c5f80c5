#!/usr/bin/env bash
# Follow-up to run_uniform_vs_grid.sh (same data, budget and scoring): the grid model with the
# residual kernel-grid generator (common logits + zero-initialised per-cell offsets, so the
# grid starts as the uniform model). Run from the repository root:
#   OMP_NUM_THREADS=1 nice -n 10 bash experiments/nonuniform/run_grid_residual.sh > experiments/nonuniform/log_residual.txt 2>&1
set -euo pipefail
OUT=${OUT:-experiments/nonuniform/runs}
COMMON=(+exp=nonuniform data.size=64 data.resize=128 'data.scenes=[camera,astronaut]'
        optim.iterations=800 optim.log_every=50 optim.snapshot_every=0 metrics.cut=8 metrics.max_shift=5
        logger=none progress=false metrics.lpips=false threads=1)
python -m weakdeblur.run "${COMMON[@]}" physics=grid generator=grid generator.kernel.residual=true \
    experiment=nonuniform_grid_residual hydra.run.dir="$OUT/grid_residual"
