r"""Oracle supervisors: ablation upper bounds that read the ground truth.

* :class:`OracleSupervisor`: :math:`g(\cdot) = x` (the sharp image);
* :class:`NoisyOracleSupervisor`: :math:`g(\cdot) = b_\sigma * x + n`, the
  ground truth degraded by a Gaussian blur of width ``blur_sigma`` and/or
  Gaussian noise of standard deviation ``noise_std`` (fixed per image by
  ``seed``), to study how the quality of the supervision matters.

Both ignore their input, so :math:`g(\hat y)` carries no gradient: with an
oracle only the weak term :math:`E(x, \bar x)` guides the prior. Both refuse
an image without ground truth (:class:`SupervisorError`).
"""

from __future__ import annotations

import torch
from kornia.filters import gaussian_blur2d

from weakdeblur.data.sample import Sample
from weakdeblur.supervisors.base import Supervisor
from weakdeblur.supervisors.errors import SupervisorError


class OracleSupervisor(Supervisor):
    """g(y) = x, the ground truth of the current image."""

    def __init__(self):
        super().__init__()
        self._target: torch.Tensor | None = None
        self.freeze()

    def degrade(self, sharp: torch.Tensor, sample: Sample) -> torch.Tensor:
        return sharp

    def prepare(self, sample: Sample) -> None:
        if sample.sharp is None:
            raise SupervisorError(
                f"supervisor '{type(self).__name__}' needs ground truth, but image "
                f"{sample.name} has none (use a dataset with sharp images, or another supervisor)"
            )
        sharp = sample.sharp.float()
        self.channels = sharp.shape[1]
        self._target = self.degrade(sharp, sample).clamp(0, 1)

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        if self._target is None:
            raise SupervisorError("oracle supervisor used before prepare(sample)")
        target = self._target.to(device=images.device, dtype=images.dtype)
        if target.shape[-2:] != images.shape[-2:]:
            raise SupervisorError(
                f"oracle ground truth is {tuple(target.shape[-2:])}, the input "
                f"{tuple(images.shape[-2:])}: an oracle only answers for the observation's size"
            )
        return target.expand(images.shape[0], -1, -1, -1)


class NoisyOracleSupervisor(OracleSupervisor):
    """g(y) = ground truth blurred by a Gaussian (σ ``blur_sigma`` px) plus N(0, ``noise_std``²)."""

    def __init__(self, noise_std: float = 0.02, blur_sigma: float = 0.0, seed: int = 0):
        if noise_std < 0 or blur_sigma < 0:
            raise SupervisorError("noise_std and blur_sigma must be non-negative")
        self.noise_std, self.blur_sigma, self.seed = noise_std, blur_sigma, seed
        super().__init__()

    def degrade(self, sharp: torch.Tensor, sample: Sample) -> torch.Tensor:
        if self.blur_sigma > 0:
            radius = max(1, int(round(3 * self.blur_sigma)))
            sharp = gaussian_blur2d(
                sharp,
                (2 * radius + 1, 2 * radius + 1),
                (self.blur_sigma, self.blur_sigma),
                border_type="reflect",
            )
        if self.noise_std > 0:
            generator = torch.Generator().manual_seed(self.seed)
            sharp = sharp + self.noise_std * torch.randn(sharp.shape, generator=generator)
        return sharp
