#!/usr/bin/env bash
# Issue 14, part 4: how much the random start alone moves +exp=selfdeblur's result.
# 4 seeds (seed_mode=seeded) x 4 Levin crops (central 128x128), plus the reference's start
# (seed_mode=reference) of each crop, at the paper's settings; then a per-crop table of PSNR
# over the seeds (mean, sd, min, max) next to the reference start's PSNR.
# 20 runs of 5000 iterations: about 12-20 h of one CPU core (ITERATIONS=1000 for a quick look;
# the schedule then scales, unlike the reference's absolute one). Run from the repository root:
#   OMP_NUM_THREADS=1 bash experiments/reference_start/seed_spread.sh
set -euo pipefail
IMAGES=${IMAGES:-'[im1_kernel4_img,im3_kernel6_img,im1_kernel1_img,im2_kernel4_img]'}
SEEDS=${SEEDS:-0,1,2,3}
ITERATIONS=${ITERATIONS:-5000}
OUT=${OUT:-multirun/seed_spread_${ITERATIONS}}
COMMON=(+exp=selfdeblur data=levin data.crop=128 "data.images=$IMAGES"
    optim.iterations="$ITERATIONS" threads=1 logger=none progress=false run_name=seed_spread)
python -m weakdeblur.run -m "${COMMON[@]}" seed_mode=seeded "seed=$SEEDS" hydra.sweep.dir="$OUT"
python -m weakdeblur.run "${COMMON[@]}" seed_mode=reference hydra.run.dir="$OUT/reference"
python - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
rows = {}
for summary in sorted(Path(sys.argv[1]).rglob("summary.json")):
    for record in json.loads(summary.read_text())["per_image"]:
        if record.get("status") == "ok":
            rows.setdefault(record["name"], []).append(record)
print(f"{'image':<18} {'blurry':>7} {'mean':>7} {'sd':>6} {'min':>7} {'max':>7} {'reference':>9}  seeds")
for name, records in sorted(rows.items()):
    seeded = {r["seed"]: r["psnr"] for r in records if r.get("seed_mode", "seeded") == "seeded"}
    reference = [r["psnr"] for r in records if r.get("seed_mode") == "reference"]
    values = list(seeded.values())
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    print(f"{name:<18} {records[0].get('blurry_psnr', float('nan')):7.2f} {statistics.fmean(values):7.2f} "
          f"{sd:6.2f} {min(values):7.2f} {max(values):7.2f} {reference[0] if reference else float('nan'):9.2f}  "
          + " ".join(f"{seed}:{value:.2f}" for seed, value in sorted(seeded.items())))
PY
