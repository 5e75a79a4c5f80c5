"""Calibrate the map supervisor's non-blind deconvolution (weight, α) on data=shake, never Levin.

python experiments/supervisors/calibrate_weight.py [NOISE]   # NOISE: std of the added noise (0.01)

Each image's kernel k̄ is estimated once (the L0 estimator does not depend on weight or α),
then y is deconvolved with k̄ (and, for reference, with the true kernel) for every pair of
the grid; prints the mean aligned PSNR of x̄ per pair and the per-image values.
"""

import sys

import numpy as np
import torch

from weakdeblur.blind import estimate_kernel
from weakdeblur.data import ShakeDataset
from weakdeblur.metrics import aligned_score
from weakdeblur.nonblind import deconvolve

WEIGHTS = (300.0, 1000.0, 3000.0)
ALPHAS = (0.5, 2.0 / 3.0, 0.8)


def main(noise: float) -> None:
    torch.set_num_threads(1)
    source = ShakeDataset(seed=100, noise=noise)
    grid = [(weight, alpha) for weight in WEIGHTS for alpha in ALPHAS]
    estimated = {pair: [] for pair in grid}
    true = {pair: [] for pair in grid}
    for name in source.names():
        sample = source.load(name)
        kernel = estimate_kernel(sample.blurry, sample.kernel_size).kernel
        for weight, alpha in grid:
            for kernels, table in ((kernel, estimated), (sample.kernel, true)):
                restored = deconvolve(sample.blurry, kernels, weight=weight, alpha=alpha)
                table[(weight, alpha)].append(aligned_score(restored, sample.sharp).psnr)
        print(name, flush=True)
    for pair in grid:
        print(
            f"weight {pair[0]:g} alpha {pair[1]:.3f}: estimated k {np.mean(estimated[pair]):.2f} dB, "
            f"true k {np.mean(true[pair]):.2f} dB, per image {np.round(estimated[pair], 1)}"
        )


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.01)
