r"""Warm start of the kernel generator on the supervisor's kernel estimate.

SelfDeblur starts :math:`G_k` at random: its first kernel is close to a flat
softmax of random logits. Where the supervisor also estimates the blur kernel
:math:`\bar k` (``supervisor=map``), :class:`KernelWarmStart` first fits
:math:`G_k`'s weights :math:`\theta_k` (with :math:`z_k` fixed) so that it
outputs :math:`\bar k`,

.. math::

    \theta_k^{(0)} = \arg\min_{\theta_k} \|G_k(z_k; \theta_k) - \bar k\|_2^2
    \quad (\text{``steps`` Adam steps at learning rate ``lr``}),

with :math:`\bar k` zero padded / centre cropped to :math:`G_k`'s kernel size;
every kernel of a grid generator is fitted to the same :math:`\bar k`. The
joint optimisation then starts from :math:`\theta_k^{(0)}` with a fresh Adam
state and the run's own learning rates: the start is informed, the objective
is unchanged. This is the alternative to the loss term
:class:`weakdeblur.kernel_terms.KernelGuidance` (issue 12, item 2), which keeps
pulling :math:`G_k` towards :math:`\bar k` while its weight lasts.

The warm start draws no random numbers, so the run's random stream (and with
``batch_size > 1`` each image's) is the one of a cold start.
"""

from __future__ import annotations

import torch
from torch import nn

from weakdeblur.kernel_terms import fit_kernel, supervisor_kernel
from weakdeblur.losses import LossConfigError


class KernelWarmStart:
    """Fits G_k to the supervisor's k̄ before the joint optimisation.

    Args:
        steps: Adam steps of the fit.
        lr: the fit's learning rate.

    A call returns the relative error ‖G_k(z_k) − k̄‖ / ‖k̄‖ before and after the fit
    (``{"before": ..., "after": ...}``).
    """

    def __init__(self, steps: int = 500, lr: float = 1e-3):
        if steps < 1 or lr <= 0:
            raise LossConfigError(
                f"kernel_start needs steps >= 1 and lr > 0, got steps={steps}, lr={lr}"
            )
        self.steps, self.lr = int(steps), float(lr)

    def target(self, sample, supervisor, size: tuple[int, int]) -> torch.Tensor:
        """k̄ of ``sample`` from ``supervisor``, fitted to ``size``."""
        return fit_kernel(supervisor_kernel(sample, supervisor, "kernel_start").float(), size)

    def __call__(
        self, kernel_net: nn.Module, kernel_code: torch.Tensor, sample, supervisor
    ) -> dict[str, float]:
        """Fit ``kernel_net`` (in place) so that ``kernel_net(kernel_code)`` ≈ k̄."""
        with torch.no_grad():
            start = kernel_net(kernel_code)
        reference = self.target(sample, supervisor, tuple(start.shape[-2:])).to(start)
        scale = reference.norm()

        def relative_error(kernel: torch.Tensor) -> float:
            return float((kernel - reference).flatten(-2).norm(dim=-1).max() / scale)

        before = relative_error(start)
        optimizer = torch.optim.Adam(kernel_net.parameters(), lr=self.lr)
        for _ in range(self.steps):
            optimizer.zero_grad(set_to_none=True)
            loss = (kernel_net(kernel_code) - reference).pow(2).sum()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            after = relative_error(kernel_net(kernel_code))
        return {"before": before, "after": after}
