"""Markdown table of the supervision study: per-image and mean PSNR/SSIM/seconds per preset.

python experiments/supervision_study/summarize.py [RUNS_DIR]

RUNS_DIR holds one run folder per preset (selfdeblur, weak_only, weak_rec, oracle), each with
its summary.json. The returned image of each run is scored (a stopping panel's run returns
the last iterate, i.e. the fixed budget's answer).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

PRESETS = ("selfdeblur", "weak_only", "weak_rec", "oracle")


def number(record: dict, key: str, fmt: str) -> str:
    value = record.get(key)
    return format(value, fmt) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def main(root: Path) -> None:
    tables = {}
    for preset in PRESETS:
        summary = root / preset / "summary.json"
        if summary.is_file():
            tables[preset] = {r["name"]: r for r in json.loads(summary.read_text())["per_image"]}
    if not tables:
        sys.exit(f"no summary.json under {root}/<preset>/ (run run_study.sh first)")
    names = sorted({name for table in tables.values() for name in table})
    print("| image | blurry | g(y) | " + " | ".join(f"{p} PSNR / SSIM / s" for p in tables) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in tables) + " |")
    for name in names:
        rows = [table.get(name, {}) for table in tables.values()]
        any_row = next(r for r in rows if r)
        # g(y) of the synthetic supervisor (the oracle's x̄ is the ground truth itself)
        supervised = next(
            (
                r
                for p, r in zip(tables, rows, strict=True)
                if p != "oracle" and "supervised_psnr" in r
            ),
            {},
        )
        cells = [
            f"{number(r, 'psnr', '.2f')} / {number(r, 'ssim', '.3f')} / {number(r, 'seconds', '.0f')}"
            for r in rows
        ]
        print(
            f"| {name.removesuffix('_img')} | {number(any_row, 'blurry_psnr', '.2f')} | "
            f"{number(supervised, 'supervised_psnr', '.2f')} | " + " | ".join(cells) + " |"
        )
    means = []
    for table in tables.values():
        ok = [r for r in table.values() if r.get("status") == "ok"]
        psnr, ssim, seconds = (mean([r[key] for r in ok]) for key in ("psnr", "ssim", "seconds"))
        means.append(f"**{psnr:.2f}** / {ssim:.3f} / {seconds:.0f}")
    every = [r for table in tables.values() for r in table.values()]
    blurry = mean(list({r["name"]: r["blurry_psnr"] for r in every if "blurry_psnr" in r}.values()))
    by_name = {
        r["name"]: r["supervised_psnr"]
        for preset, table in tables.items()
        if preset != "oracle"
        for r in table.values()
        if "supervised_psnr" in r
    }
    print(
        f"| mean | {blurry:.2f} | {mean(list(by_name.values())):.2f} | " + " | ".join(means) + " |"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "runs")
