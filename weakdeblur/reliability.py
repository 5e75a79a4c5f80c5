r"""Is the supervisor worth listening to on this image? A gate computed without ground truth.

Weak supervision by a wrong x̄ = g(y) does not just fail to help: it drags a deep prior that
would have worked towards g's mistake (experiments/supervision_study/levin128_1500: −11 dB on
a crop where the map g's kernel is wrong). :class:`StabilityGate` decides per image, from y
and g alone, whether the supervised terms are used at all.

The signal is the *stability* of g's kernel estimate. A kernel that the image really
determines should not depend much on which part of the image the estimator sees, so g is
asked again on the four corner sub-crops :math:`y_1, \dots, y_4` of side
:math:`\lceil f \cdot \min(H, W) \rceil` and

.. math::

    s = \frac{1}{4} \sum_{i=1}^{4} e(\bar k_i, \bar k), \qquad
    e(a, b) = \min_{R \in \{I, \mathrm{rot}_{180}\}} \min_{t} \frac{\|S_t R a - b\|_2}{\|b\|_2}

(the project's kernel error, :func:`weakdeblur.metrics.kernel_error`: blind deconvolution
fixes a kernel only up to a shift). g is trusted when :math:`s \le \tau`. Measured on
synthetic camera shake of photographs (never Levin; experiments/reliability), s ranks the true
gain of x̄ over y far better than x̄'s data fit; :math:`\tau` comes from there.

An untrusted image runs as plain SelfDeblur: the solver drops every loss term that reads the
supervisor (``uses_supervisor``), skips the kernel warm start, and starts the stopping rule
as if there were no supervisor (:func:`weakdeblur.stopping.start_policy`): Eq. 7 falls back
to the fixed budget, a panel leaves its g-based members out.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

from weakdeblur.data.sample import Sample
from weakdeblur.kernel_terms import supervisor_kernel
from weakdeblur.losses import LossConfigError
from weakdeblur.metrics import kernel_error


def corner_crops(sample: Sample, side: int) -> list[Sample]:
    """The four ``side``-square corner crops of ``sample``'s blurry image (no ground truth)."""
    height, width = sample.blurry.shape[-2:]
    return [
        replace(
            sample,
            name=f"{sample.name}@{top},{left}",
            blurry=sample.blurry[..., top : top + side, left : left + side],
            sharp=None,
            kernel=None,
        )
        for top in (0, height - side)
        for left in (0, width - side)
    ]


class StabilityGate:
    """Trust g on an image when its kernel estimate is stable across corner sub-crops.

    Args:
        threshold: τ, the largest mean kernel error s (sub-crop estimates vs the whole-image
            k̄) at which g is still trusted.
        crop_fraction: f, the sub-crops' side as a fraction of the image's shorter side (at
            least twice the kernel size, as the estimator needs).

    Calling the gate returns ``{"trusted": bool, "kernel_stability": s, "threshold": τ}``.
    """

    def __init__(self, threshold: float = 0.34, crop_fraction: float = 0.75):
        if threshold <= 0 or not 0 < crop_fraction < 1:
            raise LossConfigError(
                "gate needs threshold > 0 and 0 < crop_fraction < 1, "
                f"got threshold={threshold}, crop_fraction={crop_fraction}"
            )
        self.threshold, self.crop_fraction = float(threshold), float(crop_fraction)

    def stability(self, sample: Sample, supervisor) -> float:
        """s for ``sample``: the mean kernel error of the sub-crop estimates against k̄."""
        kernel = supervisor_kernel(sample, supervisor, "gate=stability")
        height, width = sample.blurry.shape[-2:]
        side = max(math.ceil(self.crop_fraction * min(height, width)), 2 * max(kernel.shape[-2:]))
        if side >= min(height, width):
            raise LossConfigError(
                f"gate=stability: {sample.name} ({height}x{width}) is too small for sub-crops "
                f"twice the {kernel.shape[-1]}-px kernel; use a larger image or no gate"
            )
        return statistics.fmean(
            kernel_error(supervisor.kernel_estimate(crop), kernel)
            for crop in corner_crops(sample, side)
        )

    def __call__(self, sample: Sample, supervisor) -> dict[str, float | bool]:
        stability = self.stability(sample, supervisor)
        return {
            "trusted": stability <= self.threshold,
            "kernel_stability": stability,
            "threshold": self.threshold,
        }
