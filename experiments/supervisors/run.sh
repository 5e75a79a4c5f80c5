#!/usr/bin/env bash
# Issue 12, item 3: the g-quality table for identity, synthetic and map on full Levin and on the
# non-Levin camera-shake set (data=shake), one CPU thread. Writes results.md/csv + summary.json
# per (supervisor, data) under OUT (kernels as PNG for map; do not commit those made from Levin).
#   WEAKDEBLUR_DATA=../shared/data bash experiments/supervisors/run.sh
#   python experiments/supervisors/table.py experiments/supervisors   # the summary table
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-outputs/supervisors}
export OMP_NUM_THREADS=1
for data in levin shake; do
  for supervisor in identity synthetic map; do
    "$PYTHON" -m weakdeblur.evaluate_supervisor supervisor="$supervisor" data="$data" threads=1 \
      out="$OUT/$supervisor/$data"
  done
done
