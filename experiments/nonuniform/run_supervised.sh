#!/usr/bin/env bash
# The supervised half of the uniform-vs-grid comparison (same data, budget and scoring as
# run_uniform_vs_grid.sh): the synthetic supervisor g with the weak + consistency losses
# (loss=weak_rec), for the uniform model and the residual grid model (+ kernel smoothness).
# Run from the repository root:
#   OMP_NUM_THREADS=1 nice -n 10 bash experiments/nonuniform/run_supervised.sh > experiments/nonuniform/log_supervised.txt 2>&1
set -euo pipefail
OUT=${OUT:-experiments/nonuniform/runs}
COMMON=(+exp=nonuniform data.size=64 data.resize=128 'data.scenes=[camera,astronaut]'
        optim.iterations=800 optim.log_every=50 optim.snapshot_every=0 metrics.cut=8 metrics.max_shift=5
        logger=none progress=false metrics.lpips=false threads=1 supervisor=synthetic loss=weak_rec)
python -m weakdeblur.run "${COMMON[@]}" physics=uniform generator=selfdeblur experiment=nonuniform_uniform_weak_rec \
    hydra.run.dir="$OUT/uniform_weak_rec"
python -m weakdeblur.run "${COMMON[@]}" physics=grid generator=grid generator.kernel.residual=true \
    +loss.terms.kernel_smoothness._target_=weakdeblur.kernel_terms.KernelSmoothness \
    +loss.terms.kernel_smoothness.weight=0.01 \
    experiment=nonuniform_grid_residual_weak_rec hydra.run.dir="$OUT/grid_residual_weak_rec"
