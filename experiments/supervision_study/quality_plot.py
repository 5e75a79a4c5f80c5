"""Final PSNR against the PSNR of x̄ (the supervision-quality sweep), with SelfDeblur's level.

python experiments/supervision_study/quality_plot.py SWEEP_DIR SELFDEBLUR_RUN [OUT.png]

SWEEP_DIR holds one run folder per blur width (quality_sweep.sh); SELFDEBLUR_RUN the
+exp=selfdeblur run of the same crops. Prints the points and the break-even PSNR of x̄ (where
the mean weak_only result crosses SelfDeblur's mean on the same images, linear interpolation).
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


def main(sweep: Path, selfdeblur: Path, out: Path) -> None:
    baseline = finished(selfdeblur)
    points = []  # (mean x̄ PSNR, mean final PSNR, mean SelfDeblur PSNR on the same images)
    for run in sorted(sweep.iterdir()):
        records = {n: r for n, r in finished(run).items() if n in baseline}
        if not records:
            continue
        xbar = sum(r["supervised_psnr"] for r in records.values()) / len(records)
        final = sum(r["psnr"] for r in records.values()) / len(records)
        sd = sum(baseline[n]["psnr"] for n in records) / len(records)
        points.append((xbar, final, sd, len(records), run.name))
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
    plt.plot([p[0] for p in points], [p[1] for p in points], "o-", label="weak_only (mean)")
    plt.plot([p[0] for p in points], [p[2] for p in points], "k--", label="SelfDeblur (mean)")
    plt.plot([p[0] for p in points], [p[0] for p in points], ":", c="grey", label="x̄ itself")
    if crossing:
        plt.axvline(crossing, c="red", lw=0.8, label=f"break-even {crossing:.1f} dB")
    plt.xlabel("PSNR of x̄ = g(y) (dB)")
    plt.ylabel("final PSNR (dB)")
    plt.legend()
    plt.savefig(out, dpi=120, bbox_inches="tight")
    print(f"figure: {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        Path(sys.argv[3]) if len(sys.argv) > 3 else Path("quality.png"),
    )
