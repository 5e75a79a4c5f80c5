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

import math

import torch
import torch.nn.functional as F
from kornia.filters import filter2d, get_gaussian_kernel2d
from torch import nn

from weakdeblur.types import IterationState, LossTerm


class ZeroPaddedSSIM(nn.Module):
    """Mean SSIM with a Gaussian window and zero padding (SelfDeblur's ``SSIM``).

    ``reference_arithmetic = True`` (set by ``seed_mode=reference``) computes the same
    value with the reference ``SSIM.py``'s float rounding: its window (``math.exp`` in
    double, normalised in float32, outer product) and five separate zero-padded
    convolutions in its order. The default differs from it by ~1e-10 in the gradient.
    """

    reference_arithmetic = False

    def __init__(
        self, window_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03
    ):
        super().__init__()
        window = get_gaussian_kernel2d((window_size, window_size), (sigma, sigma))
        self.register_buffer(
            "window", window.reshape(1, window_size, window_size), persistent=False
        )
        self.c1, self.c2 = k1**2, k2**2
        self.window_size, self.sigma = window_size, sigma

    def reference_window(self) -> torch.Tensor:
        """The window as the reference builds it, ``(1, 1, size, size)`` float32."""
        size, centre = self.window_size, self.window_size // 2
        gauss = torch.tensor(
            [math.exp(-((x - centre) ** 2) / float(2 * self.sigma**2)) for x in range(size)],
            dtype=torch.float32,
        )
        line = (gauss / gauss.sum()).unsqueeze(1)
        return line.mm(line.t())[None, None]

    def _reference_forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        channels, pad = first.shape[1], self.window_size // 2
        window = self.reference_window().to(first).expand(channels, 1, -1, -1).contiguous()

        def filtered(image: torch.Tensor) -> torch.Tensor:
            return F.conv2d(image, window, padding=pad, groups=channels)

        mu1, mu2 = filtered(first), filtered(second)
        mu1_sq, mu2_sq, mu12 = mu1.pow(2), mu2.pow(2), mu1 * mu2
        sigma1_sq = filtered(first * first) - mu1_sq
        sigma2_sq = filtered(second * second) - mu2_sq
        sigma12 = filtered(first * second) - mu12
        ssim_map = ((2 * mu12 + self.c1) * (2 * sigma12 + self.c2)) / (
            (mu1_sq + mu2_sq + self.c1) * (sigma1_sq + sigma2_sq + self.c2)
        )
        return ssim_map.mean()

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if self.reference_arithmetic:
            return self._reference_forward(first, second)
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


# -- weak supervision and consistency ---------------------------------------------------------
#
# Two terms use the frozen supervisor g and its estimate x̄ = g(y) (computed once per image):
#
# .. math::
#
#     \mathcal L_{\text{weak}} = E\big(\mathrm{crop}(G_x(z_x)),\ \bar x\big), \qquad
#     \mathcal L_{\text{rec}} = E\big(g(\hat y),\ t\big),\quad \hat y = k \star x,
#     \quad t \in \{\, g(y) = \bar x,\ \ g(\bar x) \,\}
#
# each weighted by a schedule :math:`\lambda(t)` and added to the fidelity term.


class LossConfigError(ValueError):
    """A loss asked for something this installation or configuration cannot give."""


class Distance(nn.Module):
    """A non-negative discrepancy :math:`E(a, b)` between two image batches, zero iff equal."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class L1Distance(Distance):
    r""":math:`E(a, b) = \mathrm{mean}\,|a - b|`."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(first, second)


class L2Distance(Distance):
    r""":math:`E(a, b) = \mathrm{mean}\,(a - b)^2`."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(first, second)


class CharbonnierDistance(Distance):
    r""":math:`E(a, b) = \mathrm{mean}\,\sqrt{(a - b)^2 + \epsilon^2} - \epsilon` (zero for equal inputs)."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return ((first - second).pow(2) + self.eps**2).sqrt().mean() - self.eps


class SSIMDistance(Distance):
    r""":math:`E(a, b) = 1 - \mathrm{SSIM}_0(a, b)` (Gaussian 11, σ 1.5, zero padding, as the fidelity)."""

    def __init__(self, window_size: int = 11, sigma: float = 1.5):
        super().__init__()
        self.ssim = ZeroPaddedSSIM(window_size, sigma)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.ssim(first, second)


class LPIPSDistance(Distance):
    r""":math:`E(a, b) = \mathrm{LPIPS}_{\text{alex}}(a, b)` on [0, 1] images (grey is repeated to RGB).

    Needs AlexNet's weights in the torch hub cache (see
    :func:`weakdeblur.metrics.lpips_backbone_path`); nothing is downloaded. If
    they are missing, construction fails with :class:`LossConfigError` saying
    where to put them. ``random_backbone=True`` uses untrained AlexNet features
    (plumbing tests only).
    """

    def __init__(self, random_backbone: bool = False):
        super().__init__()
        import os
        from pathlib import Path

        from weakdeblur.metrics import LPIPS_BACKBONE, lpips_backbone_path

        if not random_backbone and not lpips_backbone_path().is_file():
            raise LossConfigError(
                f"distance 'lpips' needs the AlexNet backbone at {lpips_backbone_path()} "
                f"(copy {LPIPS_BACKBONE} there or set TORCH_HOME); or choose l1, l2, charbonnier, ssim"
            )
        import lpips

        os.environ.setdefault("TORCH_HOME", str(Path(torch.hub.get_dir()).parent))
        self.model = lpips.LPIPS(
            net="alex", pretrained=True, pnet_rand=random_backbone, verbose=False
        ).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPSDistance:
        return super().train(False)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if first.shape[1] == 1:
            first, second = first.expand(-1, 3, -1, -1), second.expand(-1, 3, -1, -1)
        return self.model(first, second, normalize=True).mean()


DISTANCES = {
    "l1": L1Distance,
    "l2": L2Distance,
    "charbonnier": CharbonnierDistance,
    "ssim": SSIMDistance,
    "lpips": LPIPSDistance,
}


def make_distance(name: str | Distance) -> Distance:
    """A :class:`Distance` from its name (``l1``, ``l2``, ``charbonnier``, ``ssim``, ``lpips``)."""
    if isinstance(name, Distance):
        return name
    if name not in DISTANCES:
        raise LossConfigError(f"unknown distance {name!r}; choose one of {', '.join(DISTANCES)}")
    return DISTANCES[name]()


# -- weight schedules λ(t) for t = iteration, T = budget -------------------------------------


class Schedule:
    """A loss weight :math:`\\lambda(t)` as a function of the iteration and the budget."""

    def __call__(self, iteration: int, budget: int) -> float:
        raise NotImplementedError


class ConstantWeight(Schedule):
    r""":math:`\lambda(t) = \lambda_0`."""

    def __init__(self, value: float = 1.0):
        self.value = value

    def __call__(self, iteration: int, budget: int) -> float:
        return self.value


class LinearDecayWeight(Schedule):
    r""":math:`\lambda(t) = \lambda_0 \max\big(0,\ 1 - t / (f T)\big)`: zero from :math:`t = fT` on."""

    def __init__(self, value: float = 1.0, end_fraction: float = 0.5):
        if not 0.0 < end_fraction <= 1.0:
            raise LossConfigError(f"end_fraction must lie in (0, 1], got {end_fraction}")
        self.value, self.end_fraction = value, end_fraction

    def __call__(self, iteration: int, budget: int) -> float:
        end = self.end_fraction * budget
        return self.value * max(0.0, 1.0 - iteration / end)


class StepWeight(Schedule):
    r""":math:`\lambda(t) = \lambda_0\, \gamma^{\#\{i:\ t \ge f_i T\}}` (``gamma=0`` switches the term off)."""

    def __init__(
        self, value: float = 1.0, fractions: tuple[float, ...] = (0.5,), gamma: float = 0.0
    ):
        self.value, self.fractions, self.gamma = value, tuple(fractions), gamma

    def __call__(self, iteration: int, budget: int) -> float:
        passed = sum(iteration >= round(fraction * budget) for fraction in self.fractions)
        return self.value * self.gamma**passed


class CosineWeight(Schedule):
    r""":math:`\lambda(t) = \lambda_0 \tfrac12\big(1 + \cos(\pi \min(t / (fT), 1))\big)`."""

    def __init__(self, value: float = 1.0, end_fraction: float = 1.0):
        if not 0.0 < end_fraction <= 1.0:
            raise LossConfigError(f"end_fraction must lie in (0, 1], got {end_fraction}")
        self.value, self.end_fraction = value, end_fraction

    def __call__(self, iteration: int, budget: int) -> float:
        progress = min(iteration / (self.end_fraction * budget), 1.0)
        return self.value * 0.5 * (1.0 + math.cos(math.pi * progress))


def _as_schedule(weight: float | Schedule) -> Schedule:
    return weight if isinstance(weight, Schedule) else ConstantWeight(float(weight))


def _require_supervisor(state_or_supervised, term: str) -> None:
    if state_or_supervised is None:
        raise LossConfigError(
            f"loss term '{term}' needs a supervisor g (e.g. supervisor=synthetic), but none is set"
        )


class WeakLoss(LossTerm):
    r"""Weak supervision by the supervisor's estimate: :math:`\lambda(t)\, E\big(\mathrm{crop}(G_x(z_x)),\ \bar x\big)`.

    Args:
        distance: ``l1``, ``l2``, ``charbonnier``, ``ssim``, ``lpips`` or a :class:`Distance`.
        weight: a :class:`Schedule` or a constant.
    """

    name = "weak"
    uses_supervisor = True

    def __init__(self, distance: str | Distance = "l1", weight: float | Schedule = 1.0):
        super().__init__()
        self.distance = make_distance(distance)
        self.weight = _as_schedule(weight)

    def prepare(self, sample, observed, supervisor, supervised) -> None:
        _require_supervisor(supervised, self.name)

    def forward(self, state: IterationState) -> torch.Tensor:
        weight = self.weight(state.iteration, state.budget)
        if weight == 0.0:
            return state.image.new_zeros(())
        return weight * self.distance(state.image, state.supervised)


class ConsistencyLoss(LossTerm):
    r"""Consistency through g: :math:`\lambda(t)\, E\big(g(\hat y),\ t\big)` with :math:`\hat y = k \star x`.

    ``target="g_of_y"`` uses :math:`t = g(y) = \bar x`; ``target="g_of_xbar"`` uses
    :math:`t = g(\bar x)` (Eq. 6 as written). ``level="features"`` compares g's
    feature maps instead, :math:`\tfrac1L \sum_l E(\phi_l(\hat y), \phi_l(\cdot))`,
    with the target's features computed once (no gradient); only ``l1``, ``l2``
    and ``charbonnier`` apply to features. Gradients flow through g (frozen)
    into :math:`\hat y`, hence into G_x and G_k.
    """

    name = "rec"
    uses_supervisor = True
    TARGETS = ("g_of_y", "g_of_xbar")
    LEVELS = ("output", "features")

    def __init__(
        self,
        distance: str | Distance = "l1",
        weight: float | Schedule = 1.0,
        target: str = "g_of_y",
        level: str = "output",
    ):
        super().__init__()
        if target not in self.TARGETS:
            raise LossConfigError(f"rec target must be one of {self.TARGETS}, got {target!r}")
        if level not in self.LEVELS:
            raise LossConfigError(f"rec level must be one of {self.LEVELS}, got {level!r}")
        self.distance = make_distance(distance)
        if level == "features" and not isinstance(
            self.distance, (L1Distance, L2Distance, CharbonnierDistance)
        ):
            raise LossConfigError("feature-level consistency supports l1, l2 or charbonnier only")
        self.weight = _as_schedule(weight)
        self.target, self.level = target, level
        self._target: list[torch.Tensor] = []

    def prepare(self, sample, observed, supervisor, supervised) -> None:
        _require_supervisor(supervisor, self.name)
        source = observed if self.target == "g_of_y" else supervised
        with torch.no_grad():
            if self.level == "output":
                reference = supervised if self.target == "g_of_y" else supervisor(source)
                self._target = [reference.detach()]
            else:
                self._target = [f.detach() for f in supervisor.features(source)]

    def forward(self, state: IterationState) -> torch.Tensor:
        weight = self.weight(state.iteration, state.budget)
        if weight == 0.0:
            return state.image.new_zeros(())
        g = state.supervisor
        if self.level == "output":
            return weight * self.distance(g(state.blurred), self._target[0])
        features = g.features(state.blurred)
        total = sum(
            self.distance(mine, theirs) for mine, theirs in zip(features, self._target, strict=True)
        )
        return weight * total / len(features)
