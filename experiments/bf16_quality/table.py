"""Table of the bf16 quality study (experiments/bf16_quality/run.sh).

For each image: final PSNR and kernel error of fp32 seed 0, bf16 seed 0 and fp32 seed 1;
bf16 - fp32 (seed 0) and fp32 seed 1 - fp32 seed 0 (the seed spread bf16 is judged against);
and the largest and mean absolute difference of the PSNR curves (history.json, every logged
iteration) against fp32 seed 0.

    python experiments/bf16_quality/table.py outputs/bf16_quality_1500
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNS = ("fp32_seed0", "bf16_seed0", "fp32_seed1")


def load(root: Path, run: str, image: str) -> tuple[dict, dict[float, float]]:
    folder = root / run / image
    metrics = json.loads((folder / "metrics.json").read_text())
    history = json.loads((folder / "history.json").read_text())
    curve = {row["iteration"]: row["psnr"] for row in history if "psnr" in row}
    return metrics, curve


def finished(metrics_file: Path) -> bool:
    return json.loads(metrics_file.read_text()).get("status") == "ok"


def curve_difference(
    curve: dict[float, float], reference: dict[float, float]
) -> tuple[float, float]:
    common = sorted(set(curve) & set(reference))
    if not common:
        return float("nan"), float("nan")
    differences = [abs(curve[i] - reference[i]) for i in common]
    return max(differences), sum(differences) / len(differences)


def main(root: Path) -> None:
    images = sorted(  # the images every run finished
        set.intersection(
            *(
                {p.parent.name for p in (root / run).glob("*/metrics.json") if finished(p)}
                for run in RUNS
            )
        )
    )
    print(
        f"{'image':<18} {'PSNR fp32':>9} {'bf16':>7} {'fp32 s1':>8} {'bf16-fp32':>9} "
        f"{'s1-s0':>7} {'kerr fp32':>9} {'bf16':>7} {'fp32 s1':>8} "
        f"{'curve max|d| bf16':>17} {'mean':>6} {'seed1':>6} {'mean':>6}"
    )
    totals = {"bf16": [], "seed": []}
    for image in images:
        (m0, c0), (mb, cb), (m1, c1) = (load(root, run, image) for run in RUNS)
        psnr = [m["psnr"] for m in (m0, mb, m1)]
        kerr = [m.get("kernel_error", float("nan")) for m in (m0, mb, m1)]
        bmax, bmean = curve_difference(cb, c0)
        smax, smean = curve_difference(c1, c0)
        totals["bf16"].append(psnr[1] - psnr[0])
        totals["seed"].append(psnr[2] - psnr[0])
        print(
            f"{image:<18} {psnr[0]:9.2f} {psnr[1]:7.2f} {psnr[2]:8.2f} {psnr[1] - psnr[0]:+9.2f} "
            f"{psnr[2] - psnr[0]:+7.2f} {kerr[0]:9.4f} {kerr[1]:7.4f} {kerr[2]:8.4f} "
            f"{bmax:17.2f} {bmean:6.2f} {smax:6.2f} {smean:6.2f}"
        )
    if images:
        mean = {key: sum(values) / len(values) for key, values in totals.items()}
        print(
            f"mean PSNR difference: bf16 - fp32 {mean['bf16']:+.2f} dB; "
            f"fp32 seed 1 - seed 0 {mean['seed']:+.2f} dB ({len(images)} images)"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
