"""Final PSNR against the PSNR of x̄ (the supervision-quality sweep), with SelfDeblur's level.

python experiments/supervision_study/quality_plot.py SWEEP_DIR SELFDEBLUR_RUN [OUT.png] [LABEL=RUN ...]

SWEEP_DIR holds one run folder per blur width (quality_sweep.sh); SELFDEBLUR_RUN the
+exp=selfdeblur run of the same crops. Prints the points and the break-even PSNR of x̄ (where
the mean weak_only result crosses SelfDeblur's mean on the same images, linear interpolation),
then a per-image table (x̄ -> final PSNR for each sweep run, next to SelfDeblur's). Each
LABEL=RUN adds one marker: the mean x̄ and final PSNR of another supervised run (e.g. the map
g) on the images it shares with the sweep.
"""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def finished(run: Path) -> dict[str, dict]:
    records = (json.loads(p.read_text()) for p in run.glob("*/metrics.json"))
    return {r["name"]: r for r in records if r.get("status") == "ok"}


def main(sweep: Path, selfdeblur: Path, out: Path, extra: dict[str, Path]) -> None:
    baseline = finished(selfdeblur)
    runs = {run.name: finished(run) for run in sorted(sweep.iterdir()) if run.is_dir()}
    points = []  # (mean x̄ PSNR, mean final PSNR, mean SelfDeblur PSNR on the same images)
    for name, run_records in runs.items():
        records = {n: r for n, r in run_records.items() if n in baseline}
        if not records:
            continue
        xbar = sum(r["supervised_psnr"] for r in records.values()) / len(records)
        final = sum(r["psnr"] for r in records.values()) / len(records)
        sd = sum(baseline[n]["psnr"] for n in records) / len(records)
        points.append((xbar, final, sd, len(records), name))
        plt.scatter(
            [r["supervised_psnr"] for r in records.values()],
            [r["psnr"] for r in records.values()],
            s=10,
            c="grey",
        )
    if not points:
        sys.exit("no finished images shared by the sweep and the SelfDeblur run")
    points.sort()
    for xbar, final, sd, count, name in points:
        print(
            f"{name}: x̄ {xbar:.2f} dB -> weak_only {final:.2f} dB (SelfDeblur {sd:.2f}, {count} images)"
        )
    crossing = None
    for (x0, f0, s0, *_), (x1, f1, s1, *_) in pairwise(points):
        d0, d1 = f0 - s0, f1 - s1
        if d0 < 0 <= d1 or d1 < 0 <= d0:
            crossing = x0 + (x1 - x0) * (-d0) / (d1 - d0)
    print(
        f"break-even PSNR of x̄: {crossing:.2f} dB" if crossing else "no break-even inside the sweep"
    )
    plt.plot(
        [p[0] for p in points],
        [p[1] for p in points],
        "o-",
        label="weak_only, oracle blurred (mean)",
    )
    plt.plot([p[0] for p in points], [p[2] for p in points], "k--", label="SelfDeblur (mean)")
    plt.plot([p[0] for p in points], [p[0] for p in points], ":", c="grey", label="x̄ itself")
    shared = set().union(*(runs[p[4]] for p in points))
    for label, run in extra.items():
        records = [r for n, r in finished(run).items() if n in shared and "supervised_psnr" in r]
        if records:
            xbar = sum(r["supervised_psnr"] for r in records) / len(records)
            final = sum(r["psnr"] for r in records) / len(records)
            print(f"{label}: x̄ {xbar:.2f} dB -> {final:.2f} dB ({len(records)} images)")
            plt.scatter([xbar], [final], marker="*", s=120, label=f"{label} (mean)", zorder=3)
    print_per_image(points, runs, baseline)
    if crossing:
        plt.axvline(crossing, c="red", lw=0.8, label=f"break-even {crossing:.1f} dB")
    plt.xlabel("PSNR of x̄ = g(y) (dB)")
    plt.ylabel("final PSNR (dB)")
    plt.legend(loc="lower right", fontsize="small")
    plt.savefig(out, dpi=120, bbox_inches="tight")
    print(f"figure: {out}")


def print_per_image(points: list, runs: dict[str, dict], baseline: dict[str, dict]) -> None:
    names = [p[4] for p in points]  # sorted by the mean PSNR of x̄
    print("\n| image | SelfDeblur | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for image in sorted(set().union(*(runs[n] for n in names)) & set(baseline)):
        cells = []
        for name in names:
            record = runs[name].get(image)
            cells.append(
                f"{record['supervised_psnr']:.2f} → {record['psnr']:.2f}" if record else "-"
            )
        print(
            f"| {image.removesuffix('_img')} | {baseline[image]['psnr']:.2f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    positional = [a for a in sys.argv[1:] if "=" not in a]
    labelled = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    if len(positional) < 2:
        sys.exit(__doc__)
    main(
        Path(positional[0]),
        Path(positional[1]),
        Path(positional[2]) if len(positional) > 2 else Path("quality.png"),
        {label: Path(run) for label, run in labelled.items()},
    )
