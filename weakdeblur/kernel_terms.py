r"""Loss terms on the estimated kernel(s).

:class:`KernelSmoothness` penalises differences between neighbouring kernels of a
:math:`P \times Q` grid (the spatially varying model of
:class:`weakdeblur.physics.GridBlur`):

.. math::

    \mathcal L_{\text{smooth}} = \lambda \frac{1}{|\mathcal N|}
    \sum_{(a, b) \in \mathcal N} \| k_a - k_b \|_2^2,

where :math:`\mathcal N` holds the horizontally and vertically adjacent cell
pairs. A uniform kernel (or a 1×1 grid) has no neighbours: the term is skipped.
"""

from __future__ import annotations

import torch

from weakdeblur.types import IterationState, LossTerm


def neighbour_differences(kernels: torch.Tensor) -> torch.Tensor:
    """Mean squared L2 distance between adjacent kernels of a ``(B, P, Q, kh, kw)`` grid."""
    terms = []
    if kernels.shape[1] > 1:
        terms.append((kernels[:, 1:] - kernels[:, :-1]).pow(2).sum((-2, -1)).flatten())
    if kernels.shape[2] > 1:
        terms.append((kernels[:, :, 1:] - kernels[:, :, :-1]).pow(2).sum((-2, -1)).flatten())
    if not terms:
        return kernels.new_zeros(())
    return torch.cat(terms).mean()


class KernelSmoothness(LossTerm):
    """``weight`` × mean squared difference of neighbouring grid kernels."""

    name = "kernel_smoothness"

    def __init__(self, weight: float = 0.01):
        super().__init__()
        self.weight = weight

    def forward(self, state: IterationState) -> torch.Tensor | None:
        kernel = state.kernel
        if kernel.ndim != 5 or kernel.shape[1] * kernel.shape[2] < 2 or self.weight == 0:
            return None
        return self.weight * neighbour_differences(kernel)
