#!/usr/bin/env bash
# Issue 12, items 4-5: calibrate λ_weak, λ_rec (and the optional kernel guidance λ_k) and the
# Eq. 7 threshold for the map g on images that are NOT Levin: the 8 scikit-image photographs of
# data=shake (synthetic camera shake, kernels 13-27 px, 1 % noise), central 128-px crops, the
# study's protocol (1500 iterations of the paper schedule, seed 0). Eq. 7 records its statistic
# without stopping (stopping.threshold=null), so weakdeblur.calibrate can replay t, n, m offline.
# Runs resume per image; with two cores run the script twice at once (the run folders' locks
# split the images). Cost: (1 + grid) runs x 8 images x ~10 min of one core in fp32
# (SOLVER_BF16=true halves it once experiments/bf16_quality shows bf16 harmless).
#   WEAKDEBLUR_DATA=../shared/data bash experiments/supervision_study/calibrate_map.sh
#   python experiments/supervision_study/study_table.py selfdeblur=OUT/selfdeblur a=OUT/weak0.1_rec0.05 ...  # pick λs
#   python -m weakdeblur.calibrate OUT/<best>            # t, n, m for Eq. 7
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-outputs/calibrate_map}
BF16=${SOLVER_BF16:-false}
GRID=${GRID:-"0.1,0.05 0.03,0.05 0.0,0.05 0.1,0.2 0.03,0.2"}   # λ_weak,λ_rec pairs
export OMP_NUM_THREADS=1
COMMON=(data=shake data.crop=128 optim.iterations=1500 optim.snapshot_every=0 logger=none
    progress=false threads=1 seed=0 solver.bf16="$BF16" metrics.lpips=false)
"$PYTHON" -m weakdeblur.run +exp=selfdeblur "${COMMON[@]}" hydra.run.dir="$OUT/selfdeblur" \
    || echo "selfdeblur exited with $?"
for pair in $GRID; do
  weak=${pair%,*}; rec=${pair#*,}
  "$PYTHON" -m weakdeblur.run +exp=weak_rec supervisor=map stopping=panel \
    loss.terms.weak.weight.value="$weak" loss.terms.rec.weight.value="$rec" "${COMMON[@]}" \
    experiment="weak${weak}_rec${rec}" hydra.run.dir="$OUT/weak${weak}_rec${rec}" \
    || echo "weak $weak rec $rec exited with $?"
done
if [[ -n "${KERNEL_GUIDANCE-1}" ]]; then   # the optional k̄ term at the first pair's λs (KERNEL_GUIDANCE= skips it)
  pair=${GRID%% *}; weak=${pair%,*}; rec=${pair#*,}
  "$PYTHON" -m weakdeblur.run +exp=weak_rec supervisor=map stopping=panel loss=weak_rec_kernel \
    loss.terms.weak.weight.value="$weak" loss.terms.rec.weight.value="$rec" "${COMMON[@]}" \
    experiment="kernel_weak${weak}_rec${rec}" hydra.run.dir="$OUT/kernel_weak${weak}_rec${rec}" \
    || echo "kernel guidance exited with $?"
fi
