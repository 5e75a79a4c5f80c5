r"""Blur forward models.

Conventions: images are ``(B, C, H, W)``, kernels ``(B, 1, kh, kw)``,
non-negative and summing to one. ``F.conv2d`` computes a *correlation*; we
keep that convention throughout (SelfDeblur does the same), so a kernel
estimated here is the 180-degree rotation of the "convolution" kernel. Kernel
metrics search both orientations.

Uniform blur (valid correlation). For a latent image :math:`x` of size
:math:`(H + k_h - 1) \times (W + k_w - 1)`,

.. math::

    \hat y_{ij} = (A_k x)_{ij} = \sum_{u=0}^{k_h-1} \sum_{v=0}^{k_w-1} k_{uv}\, x_{i+u,\, j+v},

which has exactly the size :math:`H \times W` of the observation. Its adjoint
is the full transposed correlation,

.. math::

    (A_k^\top r)_{pq} = \sum_{u,v} k_{uv}\, r_{p-u,\, q-v},

mapping an :math:`H \times W` residual back to the latent size. Because
:math:`\sum k = 1`, :math:`A_k \mathbf{1} = \mathbf{1}` (constant images are
preserved) and :math:`\|A_k\|_{2\to 2} \le 1`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _grouped(images: torch.Tensor, kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Fold batch into channels so that each image meets its own kernel."""
    batch, channels = images.shape[:2]
    if kernels.shape[0] not in (1, batch):
        raise ValueError(f"kernel batch {kernels.shape[0]} does not match image batch {batch}")
    kernels = kernels.expand(batch, 1, *kernels.shape[-2:])
    weight = kernels.repeat_interleave(channels, dim=0)  # (B*C, 1, kh, kw)
    return images.reshape(1, batch * channels, *images.shape[-2:]), weight, batch * channels


class UniformBlur(nn.Module):
    """Spatially uniform blur :math:`\\hat y = k \\star x` as a valid correlation.

    Each image of the batch is blurred with its own kernel (or one shared
    kernel when ``kernels`` has batch size 1); every channel of an image uses
    the same kernel.
    """

    def forward(self, images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        if images.shape[0] == 1 and kernels.shape[0] == 1:
            channels = images.shape[1]
            return F.conv2d(
                images, kernels.expand(channels, 1, *kernels.shape[-2:]), groups=channels
            )
        folded, weight, groups = _grouped(images, kernels)
        out = F.conv2d(folded, weight, groups=groups)
        return out.reshape(images.shape[0], images.shape[1], *out.shape[-2:])

    def adjoint(self, residual: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """:math:`A_k^\\top r`: full transposed correlation, latent-sized output."""
        folded, weight, groups = _grouped(residual, kernels)
        out = F.conv_transpose2d(folded, weight, groups=groups)
        return out.reshape(residual.shape[0], residual.shape[1], *out.shape[-2:])

    @staticmethod
    def latent_size(
        observed_size: tuple[int, int], kernel_size: tuple[int, int]
    ) -> tuple[int, int]:
        """Size of the latent image whose valid blur has ``observed_size``."""
        return observed_size[0] + kernel_size[0] - 1, observed_size[1] + kernel_size[1] - 1


def blur_same(images: torch.Tensor, kernel: torch.Tensor, border: str = "reflect") -> torch.Tensor:
    """Blur keeping the image size (for synthesising observations).

    Pads by the kernel's half size with ``border`` (``reflect``, ``replicate``
    or ``constant``) and then applies :class:`UniformBlur`, so the centre of an
    output pixel is the same as in the valid model.
    """
    kh, kw = kernel.shape[-2:]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = F.pad(images, (left, kw - 1 - left, top, kh - 1 - top), mode=border)
    return UniformBlur()(padded, kernel)


def crop_to_observed(latent: torch.Tensor, kernel_size: tuple[int, int]) -> torch.Tensor:
    """Centre crop of a latent image at offset ``((kh-1)//2, (kw-1)//2)``.

    This is the part of the latent image aligned with the observation (the
    reference implementation's crop).
    """
    kh, kw = kernel_size
    height, width = latent.shape[-2] - kh + 1, latent.shape[-1] - kw + 1
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return latent[..., top : top + height, left : left + width]
