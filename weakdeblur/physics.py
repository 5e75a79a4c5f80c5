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


# -- spatially varying blur -------------------------------------------------
def _partition_1d(length: int, cells: int, device=None, dtype=None) -> torch.Tensor:
    r"""``cells`` smooth weights along one axis of ``length`` pixels, summing to one.

    Cell centres sit at :math:`c_p = (p + \tfrac12)\,L/P`. A pixel at
    :math:`t` between centres :math:`c_p` and :math:`c_{p+1}`, at fraction
    :math:`f = (t - c_p)/(c_{p+1} - c_p)`, gets :math:`\cos^2(\pi f / 2)` from cell
    :math:`p` and :math:`\sin^2(\pi f / 2)` from cell :math:`p+1` (a raised-cosine
    crossfade, continuously differentiable); pixels outside the outermost centres
    belong to the outermost cell alone. Returns ``(cells, length)``.
    """
    positions = torch.arange(length, device=device, dtype=torch.float64) + 0.5
    weights = torch.zeros(cells, length, device=device, dtype=torch.float64)
    if cells == 1:
        weights[0] = 1.0
        return weights.to(dtype or torch.get_default_dtype())
    spacing = length / cells
    u = (positions / spacing - 0.5).clamp(0, cells - 1)  # fractional cell coordinate
    low = u.floor().clamp(max=cells - 2).long()
    fraction = u - low
    columns = torch.arange(length, device=device)
    weights[low, columns] = torch.cos(0.5 * torch.pi * fraction) ** 2
    weights[low + 1, columns] += torch.sin(0.5 * torch.pi * fraction) ** 2
    return weights.to(dtype or torch.get_default_dtype())


def grid_windows(
    size: tuple[int, int], grid: tuple[int, int], device=None, dtype=None
) -> torch.Tensor:
    r"""Separable blending windows :math:`w_{pq}(i, j) = a_p(i)\, b_q(j)` of shape ``(P, Q, H, W)``.

    :math:`a` and :math:`b` are the 1-D raised-cosine partitions of
    :func:`_partition_1d`, so :math:`\sum_{p,q} w_{pq} = (\sum_p a_p)(\sum_q b_q) = 1`
    at every pixel, every window is non-negative, and neighbouring windows overlap
    by one cell width.
    """
    rows = _partition_1d(size[0], grid[0], device, dtype)
    cols = _partition_1d(size[1], grid[1], device, dtype)
    return rows[:, None, :, None] * cols[None, :, None, :]


class GridBlur(nn.Module):
    r"""Spatially varying blur: a :math:`P \times Q` grid of kernels blended by smooth windows.

    Efficient filter flow (Hirsch et al., CVPR 2010), in the valid-correlation
    convention of :class:`UniformBlur`. For a latent image :math:`x` of size
    :math:`(H + k_h - 1) \times (W + k_w - 1)` and kernels :math:`k_{pq}`,

    .. math::

        \hat y = A x = \sum_{p=1}^{P} \sum_{q=1}^{Q} k_{pq} \star \big(w_{pq} \odot x\big),

    where the windows :math:`w_{pq}` (see :func:`grid_windows`) live on the
    latent grid, are non-negative, smooth, and sum to one at every pixel. Hence

    * identical kernels :math:`k_{pq} = k` give exactly the uniform model,
      :math:`\sum_{pq} k \star (w_{pq} x) = k \star \sum_{pq} w_{pq} x = k \star x`;
    * :math:`A` is linear in :math:`x` and, separately, in each :math:`k_{pq}`;
    * far from the overlaps (where :math:`w_{pq} = 1` on a kernel's support) the
      model is the uniform blur by :math:`k_{pq}`. Note that, unlike the uniform
      case, :math:`A \mathbf 1 \ne \mathbf 1` in general for different kernels
      (:math:`(A\mathbf 1)_i = \sum_{pq}\sum_u k_{pq}(u)\, w_{pq}(i + u)`).

    The adjoint is :math:`A^\top r = \sum_{pq} w_{pq} \odot (k_{pq}^\top r)`, with
    :math:`k^\top` the full transposed correlation of :meth:`UniformBlur.adjoint`.

    Kernels are ``(B, P, Q, k_h, k_w)`` (one grid per image, or ``B = 1`` shared);
    a uniform ``(B, 1, k_h, k_w)`` kernel is accepted and used in every cell. The
    cost is :math:`PQ` uniform blurs.

    Args:
        grid: ``(P, Q)`` cells along height and width.
    """

    def __init__(self, grid: tuple[int, int] | list[int] | int = (3, 3)):
        super().__init__()
        if isinstance(grid, int):
            grid = (grid, grid)
        self.grid = (int(grid[0]), int(grid[1]))
        if min(self.grid) < 1:
            raise ValueError(f"grid must be at least 1x1, got {self.grid}")
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def cells(self) -> int:
        return self.grid[0] * self.grid[1]

    def windows(self, size: tuple[int, int], device=None, dtype=None) -> torch.Tensor:
        """The ``(P, Q, H, W)`` windows for a latent image of ``size`` (cached)."""
        key = (tuple(size), str(device), dtype)
        if key not in self._cache:
            self._cache = {key: grid_windows(tuple(size), self.grid, device, dtype)}
        return self._cache[key]

    def _cell_kernels(self, kernels: torch.Tensor) -> torch.Tensor:
        """``(B, P·Q, kh, kw)`` from a grid ``(B, P, Q, kh, kw)`` or a uniform ``(B, 1, kh, kw)``."""
        if kernels.ndim == 4 and kernels.shape[1] == 1:
            return kernels.expand(-1, self.cells, -1, -1)
        if kernels.ndim == 5 and tuple(kernels.shape[1:3]) == self.grid:
            return kernels.flatten(1, 2)
        raise ValueError(
            f"GridBlur with a {self.grid[0]}x{self.grid[1]} grid expects kernels "
            f"(B, {self.grid[0]}, {self.grid[1]}, kh, kw) or (B, 1, kh, kw), got {tuple(kernels.shape)}; "
            "the kernel generator's grid must match physics.grid"
        )

    def forward(self, images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        cells = self._cell_kernels(kernels)
        if cells.shape[0] not in (1, batch):
            raise ValueError(f"kernel batch {cells.shape[0]} does not match image batch {batch}")
        cells = cells.expand(batch, -1, -1, -1)
        windows = self.windows((height, width), images.device, images.dtype).flatten(0, 1)
        weighted = images[:, :, None] * windows  # (B, C, n, H, W)
        n = windows.shape[0]
        weight = cells[:, None].expand(batch, channels, n, *cells.shape[-2:])
        out = F.conv2d(
            weighted.reshape(1, batch * channels * n, height, width),
            weight.reshape(batch * channels * n, 1, *cells.shape[-2:]),
            groups=batch * channels * n,
        )
        return out.reshape(batch, channels, n, *out.shape[-2:]).sum(2)

    def adjoint(self, residual: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        r""":math:`A^\top r = \sum_{pq} w_{pq} \odot (k_{pq}^\top r)`, latent-sized output."""
        batch, channels = residual.shape[:2]
        cells = self._cell_kernels(kernels).expand(batch, -1, -1, -1)
        n = cells.shape[1]
        weight = cells[:, None].expand(batch, channels, n, *cells.shape[-2:])
        repeated = residual[:, :, None].expand(-1, -1, n, -1, -1)
        out = F.conv_transpose2d(
            repeated.reshape(1, batch * channels * n, *residual.shape[-2:]),
            weight.reshape(batch * channels * n, 1, *cells.shape[-2:]),
            groups=batch * channels * n,
        )
        out = out.reshape(batch, channels, n, *out.shape[-2:])
        windows = self.windows(tuple(out.shape[-2:]), out.device, out.dtype).flatten(0, 1)
        return (out * windows).sum(2)

    latent_size = staticmethod(UniformBlur.latent_size)
