#!/usr/bin/env bash
# Issue 12, items 2, 4, 5: calibrate the supervised configuration for the map g on images that
# are NOT Levin: the 8 scikit-image photographs of data=shake (synthetic camera shake, kernels
# 13-27 px, 1 % noise), central 128-px crops, the study's protocol (1500 iterations of the paper
# schedule, seed 0), bf16 autocast (1.56x faster per run; the comparison is within bf16).
# Runs: SelfDeblur; weak_rec + map g for each entry of GRID (λ_weak,λ_rec, optionally ,end of
# λ_weak's linear decay as a fraction of the budget; default the preset's 0.6) with stopping=panel
# (Eq. 7 is recorded, not obeyed, so python -m weakdeblur.calibrate replays t, n, m offline);
# at the first pair, the warm start of G_k on k̄ (kernel_start=map) and the kernel guidance term
# (loss=weak_rec_kernel, on KERNEL_IMAGES). Runs resume per image; with two cores run the script
# twice at once (the run folders' locks split the images). ~5-7 min of one core per image.
#   WEAKDEBLUR_DATA=../shared/data bash experiments/supervision_study/calibrate_map.sh
#   python experiments/supervision_study/study_table.py selfdeblur=OUT/selfdeblur \
#     map=OUT/weak0.1_rec0.05 warm=OUT/warm_weak0.1_rec0.05 kernel=OUT/kernel_weak0.1_rec0.05 \
#     --gate experiments/reliability/shake128.csv --gated map:selfdeblur
#   python -m weakdeblur.calibrate OUT/weak0.1_rec0.05            # t, n, m for Eq. 7
# Results: experiments/supervision_study/calibrate_map_bf16.md
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-outputs/calibrate_map_bf16}
BF16=${SOLVER_BF16:-true}
GRID=${GRID:-"0.1,0.05"}   # λ_weak,λ_rec[,end] entries
KERNEL_IMAGES=${KERNEL_IMAGES:-"[astronaut_k17_s101,brick_k25_s107,camera_k13_s100,chelsea_k21_s103]"}
export OMP_NUM_THREADS=1
COMMON=(data=shake data.crop=128 optim.iterations=1500 optim.snapshot_every=0 logger=none
    progress=false threads=1 seed=0 solver.bf16="$BF16" metrics.lpips=false)
run() { "$PYTHON" -m weakdeblur.run "$@" "${COMMON[@]}" || echo "exited with $?: $*"; }
run +exp=selfdeblur hydra.run.dir="$OUT/selfdeblur"
for entry in $GRID; do
  IFS=, read -r weak rec end <<<"$entry"
  run +exp=weak_rec supervisor=map stopping=panel loss.terms.weak.weight.value="$weak" \
    ${end:+loss.terms.weak.weight.end_fraction="$end"} loss.terms.rec.weight.value="$rec" \
    experiment="weak${weak}${end:+end$end}_rec${rec}" hydra.run.dir="$OUT/weak${weak}${end:+end$end}_rec${rec}"
done
IFS=, read -r weak rec _ <<<"${GRID%% *}"
LAMBDAS=(loss.terms.weak.weight.value="$weak" loss.terms.rec.weight.value="$rec")
run +exp=weak_rec supervisor=map stopping=panel kernel_start=map "${LAMBDAS[@]}" \
  experiment="warm_weak${weak}_rec${rec}" hydra.run.dir="$OUT/warm_weak${weak}_rec${rec}"
run +exp=weak_rec supervisor=map stopping=panel loss=weak_rec_kernel "${LAMBDAS[@]}" \
  data.images="$KERNEL_IMAGES" experiment="kernel_weak${weak}_rec${rec}" \
  hydra.run.dir="$OUT/kernel_weak${weak}_rec${rec}"
