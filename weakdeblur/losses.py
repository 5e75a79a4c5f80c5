r"""Loss terms.

SelfDeblur's data fidelity switches from the mean squared error to one minus
a zero-padded SSIM part-way through the budget:

.. math::

    \mathcal{L}_{\text{fid}}(t) = \begin{cases}
        \tfrac{1}{HW}\|k \star x - y\|_2^2 & t < s\,T \\
        1 - \mathrm{SSIM}_0(k \star x,\ y) & t \ge s\,T
    \end{cases}

with :math:`s = 0.2` (1000 of 5000 iterations). :math:`\mathrm{SSIM}_0` uses an
11×11 Gaussian window (σ = 1.5), :math:`C_1 = 0.01^2`, :math:`C_2 = 0.03^2`,
zero padding ("same" size) and the mean over the map, as the reference does;
kornia's filters reflect by default, so we build it from
:func:`kornia.filters.get_gaussian_kernel2d` and :func:`kornia.filters.filter2d`
with a constant border.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import filter2d, get_gaussian_kernel2d
from torch import nn


class ZeroPaddedSSIM(nn.Module):
    """Mean SSIM with a Gaussian window and zero padding (SelfDeblur's ``SSIM``)."""

    def __init__(
        self, window_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03
    ):
        super().__init__()
        window = get_gaussian_kernel2d((window_size, window_size), (sigma, sigma))
        self.register_buffer(
            "window", window.reshape(1, window_size, window_size), persistent=False
        )
        self.c1, self.c2 = k1**2, k2**2

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        channels = first.shape[1]
        stacked = torch.cat([first, second, first * first, second * second, first * second], dim=1)
        window = self.window.to(dtype=first.dtype)
        filtered = filter2d(stacked, window, border_type="constant")
        mu1, mu2, e11, e22, e12 = filtered.split(channels, dim=1)
        mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
        sigma1_sq, sigma2_sq, sigma12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
        ssim_map = ((2 * mu12 + self.c1) * (2 * sigma12 + self.c2)) / (
            (mu1_sq + mu2_sq + self.c1) * (sigma1_sq + sigma2_sq + self.c2)
        )
        return ssim_map.mean()


class FidelityLoss(nn.Module):
    """SelfDeblur's data term: MSE, then ``1 - SSIM`` from ``switch_fraction`` of the budget on.

    Args:
        switch_fraction: fraction of the iteration budget spent on MSE (0.2 = 1000/5000).
            ``0`` uses SSIM throughout, ``1`` MSE throughout.
    """

    def __init__(self, switch_fraction: float = 0.2, window_size: int = 11, sigma: float = 1.5):
        super().__init__()
        if not 0.0 <= switch_fraction <= 1.0:
            raise ValueError(f"switch_fraction must lie in [0, 1], got {switch_fraction}")
        self.switch_fraction = switch_fraction
        self.ssim = ZeroPaddedSSIM(window_size, sigma)

    def switch_iteration(self, budget: int) -> int:
        return int(round(self.switch_fraction * budget))

    def forward(
        self, predicted: torch.Tensor, observed: torch.Tensor, iteration: int, budget: int
    ) -> torch.Tensor:
        if iteration < self.switch_iteration(budget):
            return F.mse_loss(predicted, observed)
        return 1.0 - self.ssim(predicted, observed)
