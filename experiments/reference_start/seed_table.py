"""Per-image spread of the final PSNR over runs that differ only in their seed (issue 14, item 4).

    python experiments/reference_start/seed_table.py seed0=RUN_DIR seed1=RUN_DIR [...]

Each RUN_DIR is a run folder (one sub-folder per image with metrics.json). Prints a markdown
table: blurry PSNR, each seed's final PSNR, then min / median / max and max - min per image,
over the images every run finished.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def finished(run: Path) -> dict[str, dict]:
    records = (json.loads(p.read_text()) for p in run.glob("*/metrics.json"))
    return {r["name"]: r for r in records if r.get("status") == "ok"}


def main(arguments: list[str]) -> None:
    if not arguments or any("=" not in a for a in arguments):
        sys.exit(__doc__)
    runs = {label: finished(Path(path)) for label, path in (a.split("=", 1) for a in arguments)}
    images = sorted(set.intersection(*(set(records) for records in runs.values())))
    if not images:
        sys.exit("no image finished in every run")
    labels = list(runs)
    print("| image | blurry | " + " | ".join(labels) + " | min | median | max | max − min |")
    print("| --- | --- |" + " --- |" * (len(labels) + 4))
    spreads = []
    for image in images:
        values = [runs[label][image]["psnr"] for label in labels]
        spreads.append(max(values) - min(values))
        cells = " | ".join(f"{v:.2f}" for v in values)
        print(
            f"| {image.removesuffix('_img')} | {runs[labels[0]][image]['blurry_psnr']:.2f} | "
            f"{cells} | {min(values):.2f} | {statistics.median(values):.2f} | "
            f"{max(values):.2f} | {spreads[-1]:.2f} |"
        )
    print(
        f"\nmean max − min over {len(images)} images: {statistics.fmean(spreads):.2f} dB; "
        f"largest {max(spreads):.2f} dB"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
