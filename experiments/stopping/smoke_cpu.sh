#!/usr/bin/env bash
# CPU smoke run of every stopping policy (NOT the evidence): the small generator on a
# 64x64 synthetic demo crop (9x9 kernel, 1% noise), 1000 iterations (optim=demo), one thread.
# Identity supervisor for the consistency rule (E = L1(ŷ, y): it checks the plumbing, it is not
# a useful statistic). ES-WMV patience scaled to the budget: 300 instead of 1000.
#   bash experiments/stopping/smoke_cpu.sh [OUT]
set -euo pipefail
OUT=${1:-outputs/stopping_smoke}
COMMON=(generator=small data=demo data.size=64 data.offset=null data.true_kernel_size=9
        data.kernel_size=11 optim=demo logger=none progress=false metrics.lpips=false threads=1)
run() { local name=$1; shift; python -m weakdeblur.run "${COMMON[@]}" "$@" "hydra.run.dir=$OUT/$name"; }
run fixed stopping=fixed
run ema stopping=ema
run wmv stopping=wmv stopping.patience=300
run ema_wmv stopping=ema_wmv stopping.inner.patience=300
run oracle stopping=oracle
# calibration material: record E on 4 synthetic blurs (kernel seeds 1-4), never stopping
python -m weakdeblur.run -m "${COMMON[@]}" supervisor=identity stopping=consistency \
    stopping.threshold=null stopping.check_every=50 data.seed=1,2,3,4 \
    "hydra.sweep.dir=$OUT/calibration" 'hydra.sweep.subdir=seed${data.seed}'
python -m weakdeblur.calibrate "$OUT/calibration" --max-mean-iterations 700 \
    --output "$OUT/calibration.json" | tee "$OUT/calibration.txt"
# the calibrated rule on the held-out seed-0 image (the one the policies above ran on)
python -m weakdeblur.run "${COMMON[@]}" supervisor=identity \
    $(python -c "import json; print(json.load(open('$OUT/calibration.json'))['overrides'])") \
    "hydra.run.dir=$OUT/consistency_calibrated"
