r"""Loss terms on the estimated kernel(s).

:class:`KernelSmoothness` penalises differences between neighbouring kernels of a
:math:`P \times Q` grid (the spatially varying model of
:class:`weakdeblur.physics.GridBlur`):

.. math::

    \mathcal L_{\text{smooth}} = \lambda \frac{1}{|\mathcal N|}
    \sum_{(a, b) \in \mathcal N} \| k_a - k_b \|_2^2,

where :math:`\mathcal N` holds the horizontally and vertically adjacent cell
pairs. A uniform kernel (or a 1×1 grid) has no neighbours: the term is skipped.

:class:`KernelGuidance` pulls :math:`k = G_k(z_k)` towards the kernel
:math:`\bar k` that the supervisor estimated (issue 12, item 2; only
``supervisor=map`` estimates one). Blind deconvolution fixes the kernel only up
to a translation (shifting k one way and x the other leaves :math:`k \star x`
unchanged), so the distance is the smallest over integer shifts
:math:`s \in \{-r, \dots, r\}^2`:

.. math::

    \mathcal L_{k} = \lambda(t) \min_{s} \| k - \tau_s \bar k \|_2^2,

where :math:`\tau_s \bar k` is :math:`\bar k` shifted by :math:`s`, zero filled
(mass shifted out of the window is lost). Its gradient is :math:`2 (k - \tau_{s^*} \bar k)`
at the best shift :math:`s^*`. Every kernel of a grid is pulled towards the
same :math:`\bar k`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from weakdeblur.data.datasets import centre_crop
from weakdeblur.losses import LossConfigError, Schedule, _as_schedule
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


def fit_kernel(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``kernel`` (``(kh, kw)``) zero-padded, then centre-cropped, to ``size``."""
    pad_h, pad_w = max(size[0] - kernel.shape[0], 0), max(size[1] - kernel.shape[1], 0)
    padded = F.pad(kernel, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    return centre_crop(padded, size)


def supervisor_kernel(sample, supervisor, user: str) -> torch.Tensor:
    """k̄ of ``sample`` as a ``(kh, kw)`` tensor, or one clear error naming ``user`` when the
    supervisor estimates no kernel (only ``supervisor=map`` does)."""
    estimate = supervisor.kernel_estimate(sample) if supervisor is not None else None
    if estimate is None:
        name = type(supervisor).__name__ if supervisor is not None else "none"
        raise LossConfigError(
            f"{user} needs a supervisor that estimates the kernel (supervisor=map), got {name}"
        )
    return estimate.reshape(estimate.shape[-2:])


def shift_invariant_distance(
    kernels: torch.Tensor, reference: torch.Tensor, max_shift: int
) -> torch.Tensor:
    r"""Mean over ``kernels`` (``(..., kh, kw)``) of :math:`\min_{|s|_\infty \le r}
    \|k - \tau_s \bar k\|_2^2` with ``reference`` :math:`\bar k` (``(kh, kw)``)."""
    kh, kw = kernels.shape[-2:]
    flat = kernels.reshape(-1, kh * kw)
    padded = F.pad(reference[None, None], (max_shift,) * 4)
    shifted = F.unfold(padded, (kh, kw))[0]  # (kh·kw, (2r + 1)²): every shifted window
    distances = (flat[:, :, None] - shifted[None]).pow(2).sum(1)
    return distances.min(dim=1).values.mean()


class KernelGuidance(LossTerm):
    """``weight(t)`` × the shift-invariant squared distance of k to the supervisor's k̄.

    Args:
        weight: a :class:`~weakdeblur.losses.Schedule` or a constant.
        max_shift: the largest shift r (pixels, each axis) the distance forgives.
    """

    name = "kernel_guidance"
    uses_supervisor = True

    def __init__(self, weight: float | Schedule = 1.0, max_shift: int = 3):
        super().__init__()
        if max_shift < 0:
            raise LossConfigError(f"kernel_guidance.max_shift must be >= 0, got {max_shift}")
        self.weight = _as_schedule(weight)
        self.max_shift = int(max_shift)
        self.reference: torch.Tensor | None = None

    def prepare(self, sample, observed, supervisor, supervised) -> None:
        estimate = supervisor_kernel(sample, supervisor, "loss term 'kernel_guidance'")
        # once per image: k̄ at G_k's kernel size, on the run's device and dtype
        reference = fit_kernel(estimate, tuple(sample.kernel_size))
        self.reference = reference.to(observed)

    def forward(self, state: IterationState) -> torch.Tensor | None:
        weight = self.weight(state.iteration, state.budget)
        if weight == 0.0:
            return None
        if self.reference is None:
            raise LossConfigError("kernel_guidance used before prepare()")
        return weight * shift_invariant_distance(state.kernel, self.reference, self.max_shift)
