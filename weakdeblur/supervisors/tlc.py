r"""Test-time local converter (TLC) for NAFNet: local instead of global channel statistics.

Chu, Chen, Chen, Lu, "Improving Image Restoration by Revisiting Global
Information Aggregation" (ECCV 2022). NAFNet's simplified channel attention
pools each feature map to one number per channel, a statistic of the whole
image. The network was trained on 256×256 crops, so at test time on a
720×1280 frame that statistic describes a far larger area than in training.
TLC replaces the global mean by a mean over a window of the size the network
saw in training; the official GoPro test configurations (``NAFNetLocal``) run
NAFNet this way.

**Window size.** The official ``Local_Base.convert`` calibrates on a
``train_size`` input (default 256×256, zero-padded to the network's multiple
of 16) with a base size of :math:`\lfloor 1.5 H_t \rfloor \times \lfloor 1.5
W_t \rfloor`. A block whose feature map is :math:`h_\ell \times w_\ell` at
that size (:math:`h_\ell = \tilde H_t / 2^\ell` at U-Net level :math:`\ell`)
gets the kernel

.. math::

    k_\ell = \big(\lfloor h_\ell \lfloor 1.5 H_t\rfloor / H_t \rfloor,\;
                  \lfloor w_\ell \lfloor 1.5 W_t\rfloor / W_t \rfloor\big),

384, 192, 96, 48, 24 for the default and four levels. The kernel is fixed
after conversion, whatever the size of later inputs.

**Local mean.** On an :math:`h \times w` map with kernel :math:`(K_1, K_2)`:
if :math:`K_1 \ge h` and :math:`K_2 \ge w` the result is the global mean
(so below 1.5× the training size TLC changes nothing). Otherwise, with
:math:`k_1 = \min(h, K_1)`, :math:`k_2 = \min(w, K_2)`, the valid box means

.. math::

    m_{ij} = \frac{1}{k_1 k_2} \sum_{a < k_1,\, b < k_2} u_{i+a,\,j+b},
    \qquad 0 \le i \le h - k_1,\; 0 \le j \le w - k_2,

are computed from a summed-area table, and the map is brought back to
:math:`h \times w` by replicating its border rows and columns,
:math:`\lfloor (k_1 - 1)/2 \rfloor` above and :math:`\lfloor k_1/2 \rfloor`
below (likewise left and right): each pixel gets the mean of the window
centred on it, shifted inside the image near the border. This is the
official ``AvgPool2d(fast_imp=False)``; the non-equivalent ``fast_imp``
variant is not offered.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: the official ``NAFNetLocal``: base size = ⌊1.5 × train size⌋
BASE_SIZE_FACTOR = 1.5


class LocalAvgPool2d(nn.Module):
    """The TLC local mean with a fixed ``kernel_size`` (height, width); see the module doc."""

    def __init__(self, kernel_size: tuple[int, int]):
        super().__init__()
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.kernel_size[0] >= height and self.kernel_size[1] >= width:
            return F.adaptive_avg_pool2d(x, 1)
        k1, k2 = min(height, self.kernel_size[0]), min(width, self.kernel_size[1])
        # summed-area table with a zero first row and column: table[i, j] = sum of x[:i, :j]
        table = F.pad(x.cumsum(dim=-1).cumsum(dim=-2), (1, 0, 1, 0))
        box = (
            table[..., k1:, k2:]
            + table[..., :-k1, :-k2]
            - table[..., :-k1, k2:]
            - table[..., k1:, :-k2]
        )
        means = box / (k1 * k2)
        return F.pad(means, ((k2 - 1) // 2, k2 // 2, (k1 - 1) // 2, k1 // 2), mode="replicate")


def tlc_kernel_size(
    level: int, padder_size: int, train_size: Sequence[int] = (256, 256)
) -> tuple[int, int]:
    """The official window of a block at U-Net ``level`` (0 = full resolution) of a
    network padding to ``padder_size``, calibrated at ``train_size`` (height, width)."""
    sizes = []
    for train in train_size:
        padded = -(-train // padder_size) * padder_size
        sizes.append((padded >> level) * int(train * BASE_SIZE_FACTOR) // train)
    return sizes[0], sizes[1]


def use_local_statistics(net: nn.Module, train_size: Sequence[int] = (256, 256)) -> nn.Module:
    """Converts a :class:`~weakdeblur.supervisors.nafnet.NAFNet` in place to TLC
    (the official ``NAFNetLocal``): every block's global pooling ``sca[0]`` becomes a
    :class:`LocalAvgPool2d` with its level's :func:`tlc_kernel_size`. Parameter names
    are unchanged, so the same checkpoint loads before or after."""
    depth = len(net.encoders)
    levels = [(blocks, level) for level, blocks in enumerate(net.encoders)]
    levels.append((net.middle_blks, depth))
    levels += [(blocks, depth - 1 - index) for index, blocks in enumerate(net.decoders)]
    for blocks, level in levels:
        kernel = tlc_kernel_size(level, net.padder_size, train_size)
        for block in blocks:
            block.sca[0] = LocalAvgPool2d(kernel)
    return net
