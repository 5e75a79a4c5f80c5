r"""The supervisor interface: a frozen, pretrained deblurring network g.

The method uses g in two places:

* weak supervision, :math:`\bar x = g(y)`, computed once per image without gradients;
* consistency, :math:`g(\hat y)` with :math:`\hat y = k \star x`, which must be
  differentiable with respect to its *input* so that the loss reaches G_x and G_k.

So a supervisor's parameters are frozen (``requires_grad=False``, always in
eval mode) but its forward pass keeps the autograd graph of the input.
``forward`` pads the input to the network's ``stride`` (reflection) and crops
back, adapts grey/RGB to the channels the network was trained on, and clamps
the output to [0, 1].
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from weakdeblur.data.sample import Sample


class Supervisor(nn.Module):
    """Base class. Subclasses implement :meth:`restore` (and optionally :meth:`restore_features`).

    Attributes:
        stride: input height and width are padded to a multiple of this.
        channels: image channels the network expects (1 grey, 3 RGB).
    """

    stride: int = 1
    channels: int = 1

    def prepare(self, sample: Sample) -> None:
        """Per-image hook, called before the supervisor is used on ``sample``
        (oracles read the ground truth here)."""

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        """The network on a padded ``(B, channels, H, W)`` batch."""
        raise NotImplementedError

    def kernel_estimate(self, sample: Sample) -> torch.Tensor | None:
        """k̄, the blur kernel g estimated for ``sample`` (``(1, 1, kh, kw)``), if g estimates one."""
        return None

    def restore_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate feature maps of the network (default: the output only)."""
        return [self.restore(images)]

    # -- shared machinery ---------------------------------------------------
    def freeze(self) -> Supervisor:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> Supervisor:
        """Supervisors stay in eval mode (frozen BatchNorm statistics, no dropout)."""
        return super().train(False)

    def _adapt_in(self, images: torch.Tensor) -> tuple[torch.Tensor, int]:
        channels = images.shape[1]
        if channels == self.channels:
            return images, channels
        if channels == 1 and self.channels == 3:
            return images.expand(-1, 3, -1, -1), channels
        if channels == 3 and self.channels == 1:
            return kornia.color.rgb_to_grayscale(images), channels
        raise ValueError(f"supervisor expects 1 or 3 channels, got {channels}")

    @staticmethod
    def _adapt_out(restored: torch.Tensor, channels: int) -> torch.Tensor:
        if restored.shape[1] == channels:
            return restored
        if channels == 1:
            return (
                kornia.color.rgb_to_grayscale(restored)
                if restored.shape[1] == 3
                else restored.mean(1, keepdim=True)
            )
        return restored.expand(-1, channels, -1, -1)

    def _pad(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        height, width = images.shape[-2:]
        pad_h = (-height) % self.stride
        pad_w = (-width) % self.stride
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            images = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
        return images, (height, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """g(images): a deblurred image of the input's size and channels, in [0, 1]."""
        adapted, channels = self._adapt_in(images)
        padded, (height, width) = self._pad(adapted)
        restored = self.restore(padded)[..., :height, :width]
        return self._adapt_out(restored, channels).clamp(0, 1)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of g on ``images`` (for feature-level consistency)."""
        adapted, _ = self._adapt_in(images)
        padded, _ = self._pad(adapted)
        return self.restore_features(padded)


class NetworkSupervisor(Supervisor):
    """A supervisor wrapping a network ``self.net`` whose ``forward_features(x)``
    returns ``(output, [feature maps])``."""

    net: nn.Module

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def restore_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        out, features = self.net.forward_features(images)
        return [*features, out]


class IdentitySupervisor(Supervisor):
    """g(y) = y: the ablation lower bound (no information beyond the input)."""

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        return images
