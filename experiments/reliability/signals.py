"""Can the map g tell when it fails? Candidate reliability signals of x̄ = g(y), no ground truth.

The 128-px study (../supervision_study/levin128_1500) loses on average because the map g fails
on some crops (x̄ no sharper than y) and weak supervision then drags SelfDeblur down. A gate
that switches supervision off where g is unreliable needs a signal computed from y and g alone.
This script computes candidates on synthetic camera shake of photographs that are NOT Levin
(data=shake, several seeds, 128-px central crops, the study's size) and reports how each one
ranks against x̄'s true gain over y (Levin scorer):

- ``stability``: mean kernel error (shift and 180° invariant) between k̄ and the kernels the
  same estimator finds on the four corner sub-crops of y (3/4 of the side): an estimate that
  depends on which part of the image it saw is not trusted (the product's gate=stability,
  weakdeblur/reliability.py, computes exactly this);
- ``residual``: RMS of k̄ ⋆ x̄ − y over the valid part (the data fit of x̄ under k̄);
- ``mass``: the fraction of k̄'s pixels that are non-zero (a delta-like or diffuse kernel).

    OMP_NUM_THREADS=1 python experiments/reliability/signals.py \
        --seeds 100 200 300 400 --out experiments/reliability/shake128.csv

With ``--levin ROOT`` it scores the 8 Levin crops of the 128-px study instead (evaluation of
the gate whose threshold was fixed on shake; the CSV holds numbers only, no pixels).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from weakdeblur.data import LevinDataset, ShakeDataset
from weakdeblur.metrics import aligned_score, kernel_error
from weakdeblur.reliability import StabilityGate
from weakdeblur.supervisors import MAPSupervisor

PHOTOS = ["camera", "astronaut", "coffee", "chelsea", "rocket", "grass", "gravel", "brick"]
SIZES = [13, 17, 19, 21, 23, 27, 15, 25]
STUDY = [
    "im1_kernel1_img",
    "im2_kernel2_img",
    "im3_kernel3_img",
    "im4_kernel4_img",
    "im1_kernel5_img",
    "im2_kernel6_img",
    "im3_kernel7_img",
    "im4_kernel8_img",
]
LEVIN_SIZES = [17, 15, 13, 27, 11, 19, 21, 21]


def signals(sample, supervisor: MAPSupervisor) -> dict[str, float]:
    restored, kernel = supervisor.estimate(sample)
    y = sample.blurry.double()
    k = kernel.double()
    size = kernel.shape[-1]
    stability = StabilityGate().stability(sample, supervisor)
    # x̄ is y-sized: compare k̄ ⋆ x̄ with y where the valid correlation is defined
    reblurred = F.conv2d(restored.double(), k)
    margin = (size - 1) // 2
    target = y[..., margin : margin + reblurred.shape[-2], margin : margin + reblurred.shape[-1]]
    residual = float((reblurred - target).pow(2).mean().sqrt())
    mass = float((k > 0).double().mean())
    return {"stability": stability, "residual": residual, "mass": mass}


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    for rank, index in enumerate(order):
        result[index] = float(rank)
    return result


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 200, 300, 400])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--levin", type=Path, help="the Levin folder: score the study's crops")
    parser.add_argument("--out", type=Path, default=Path("shake128.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    supervisor = MAPSupervisor()  # the shipped default (weight 1000, α 0.8)
    if args.levin:
        sources = [LevinDataset(args.levin, LEVIN_SIZES, images=STUDY, crop=args.crop)]
    else:  # each seed pairs the photos with other kernel sizes
        sources = [
            ShakeDataset(
                photos=PHOTOS,
                kernel_sizes=SIZES[offset:] + SIZES[:offset],
                seed=seed,
                crop=args.crop,
            )
            for offset, seed in enumerate(args.seeds)
        ]
    rows = []
    for source in sources:
        for name in source.names():
            sample = source.load(name)
            sharp = sample.sharp.float()
            restored, kernel = supervisor.estimate(sample)
            gain = aligned_score(restored, sharp).psnr - aligned_score(sample.blurry, sharp).psnr
            row = {
                "image": name,
                "gain_db": gain,
                "kernel_error": kernel_error(kernel, sample.kernel),
                **signals(sample, supervisor),
            }
            rows.append(row)
            print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else v for k, v in row.items()))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                writer.writeheader()
                writer.writerows(rows)
    gains = [row["gain_db"] for row in rows]
    for key in ("kernel_error", "stability", "residual", "mass"):
        print(f"Spearman(gain, {key}) = {spearman(gains, [row[key] for row in rows]):+.2f}")


if __name__ == "__main__":
    main()
