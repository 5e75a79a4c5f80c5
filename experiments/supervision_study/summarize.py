"""Table of the supervision study: mean and per-image PSNR/SSIM/seconds per preset.

python experiments/supervision_study/summarize.py [RUNS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PRESETS = ("selfdeblur", "weak_only", "weak_rec", "oracle")


def main(root: Path) -> None:
    tables = {}
    for preset in PRESETS:
        summary = root / preset / "summary.json"
        if summary.is_file():
            tables[preset] = {r["name"]: r for r in json.loads(summary.read_text())["per_image"]}
    if not tables:
        sys.exit(f"no summary.json under {root}/<preset>/ (run run_study.sh first)")
    names = sorted({name for table in tables.values() for name in table})
    header = f"{'image':<18}" + "".join(f" {p + ' PSNR/SSIM/s':>28}" for p in tables)
    print(header + f" {'blurry':>7} {'g(y)':>7}")
    for name in names:
        cells = []
        for table in tables.values():
            r = table.get(name, {})
            cells.append(
                f" {r.get('psnr', float('nan')):>10.2f}/{r.get('ssim', float('nan')):.4f}/{r.get('seconds', float('nan')):>6.0f}"
            )
        any_row = next(t[name] for t in tables.values() if name in t)
        supervised = next(
            (
                t[name].get("supervised_psnr")
                for t in tables.values()
                if name in t and "supervised_psnr" in t[name]
            ),
            float("nan"),
        )
        print(
            f"{name:<18}"
            + "".join(cells)
            + f" {any_row.get('blurry_psnr', float('nan')):>7.2f} {supervised:>7.2f}"
        )
    means = []
    for table in tables.values():
        ok = [r for r in table.values() if r.get("status") == "ok"]
        psnr, ssim, seconds = (
            sum(r[key] for r in ok) / max(len(ok), 1) for key in ("psnr", "ssim", "seconds")
        )
        means.append(f" {psnr:>10.2f}/{ssim:.4f}/{seconds:>6.0f}")
    print(f"{'mean':<18}" + "".join(means))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "runs")
