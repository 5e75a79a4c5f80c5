"""Side by side: SelfDeblur's own script and weakdeblur ``seed_mode=reference`` on one Levin crop.

Reads the reference script's per-iteration losses (its stdout, patched to print
``LOSS <step> <total_loss>``, docs/reproduction.md) and the float x crops it saved with
``np.save`` every ``--save_frequency`` steps, and a weakdeblur run folder of the same image
(``<run>/<image>/history.csv``). Prints, at every iteration both logged, the relative
difference of the losses and the PSNR/SSIM of both iterates under weakdeblur's Levin scorer
(the CLI's per-step ``psnr``: cut 15, shifts up to 10 px).

weakdeblur's ``history.csv`` row ``iteration = i`` holds the loss of the i-th iteration, which
the reference prints as ``LOSS i-1`` (it counts from 0).

    WEAKDEBLUR_DATA=/path/to/data python experiments/reference_start/compare_reference.py \\
        --log levin5000_k6.log --x-dir out_levin128_k6/ \\
        --run outputs/reference_start/crops_5000 --image im3_kernel6_img
"""

from __future__ import annotations

import argparse
import csv
import os
import re
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from weakdeblur.data import LevinDataset
from weakdeblur.evaluation import Evaluator
from weakdeblur.metrics import LPIPSMetric

LEVIN_CONFIG = Path(__file__).resolve().parents[2] / "conf" / "data" / "levin.yaml"
LOSS_LINE = re.compile(r"^LOSS (\d+) (\S+)")


def reference_losses(log: Path) -> dict[int, float]:
    """{iteration counted from 1: loss} from the reference's ``LOSS <step> <value>`` lines."""
    losses = {}
    for line in log.read_text().splitlines():
        match = LOSS_LINE.match(line)
        if match:
            losses[int(match.group(1)) + 1] = float(match.group(2))
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, required=True, help="the reference script's stdout")
    parser.add_argument(
        "--x-dir", type=Path, required=True, help="its --save_path (the .npy crops)"
    )
    parser.add_argument("--run", type=Path, required=True, help="weakdeblur run folder")
    parser.add_argument("--image", required=True, help="Levin image name, e.g. im3_kernel6_img")
    parser.add_argument("--crop", type=int, default=128, help="central crop of both runs")
    parser.add_argument("--data-root", default=os.environ.get("WEAKDEBLUR_DATA"))
    args = parser.parse_args(argv)
    if not args.data_root:
        parser.error("set WEAKDEBLUR_DATA or --data-root (a folder holding levin/)")

    kernel_sizes = list(OmegaConf.load(LEVIN_CONFIG).kernel_sizes)  # the project's, not a copy
    sample = LevinDataset(Path(args.data_root) / "levin", kernel_sizes, crop=args.crop).load(
        args.image
    )
    score = Evaluator(lpips=LPIPSMetric(False)).progress(sample)
    reference = reference_losses(args.log)
    with open(args.run / args.image / "history.csv", newline="") as handle:
        ours = {int(float(row["iteration"])): row for row in csv.DictReader(handle)}

    print(
        f"{args.image}: blurry {score(sample.blurry)['psnr']:.4f} dB; "
        f"{len(reference)} reference losses, {len(ours)} logged weakdeblur iterations"
    )
    print(
        f"{'iteration':>9} {'loss rel. diff':>14} {'ref PSNR':>9} {'ours PSNR':>9} "
        f"{'ref SSIM':>8} {'ours SSIM':>9}"
    )
    worst = 0.0
    for iteration, row in sorted(ours.items()):
        if iteration not in reference:
            continue
        difference = abs(float(row["loss"]) - reference[iteration]) / abs(reference[iteration])
        worst = max(worst, difference)
        saved = args.x_dir / f"{args.image}_x_{iteration:05d}.npy"
        if saved.exists():
            x = torch.from_numpy(np.load(saved)).float()[None, None]
            metrics = score(x)
            print(
                f"{iteration:>9} {difference:>14.2e} {metrics['psnr']:>9.4f} "
                f"{float(row['psnr']):>9.4f} {metrics['ssim']:>8.4f} {float(row['ssim']):>9.4f}"
            )
    print(f"largest relative loss difference over the common logged iterations: {worst:.2e}")


if __name__ == "__main__":
    main()
