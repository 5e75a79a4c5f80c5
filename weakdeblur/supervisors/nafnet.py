r"""NAFNet (Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022).

The module and parameter names follow the official implementation
(``basicsr/models/archs/NAFNet_arch.py``: ``intro``, ``encoders``, ``downs``,
``middle_blks``, ``ups``, ``decoders``, ``ending``; blocks with ``conv1`` …
``conv5``, ``sca``, ``norm1``, ``norm2``, ``beta``, ``gamma``) so that an
official checkpoint (``torch.load(path)["params"]``) loads with
``strict=True``. The code is written here from the paper's equations.

A NAF block on features :math:`u` computes

.. math::

    v = u + \beta \odot W_3\,\mathrm{SCA}\big(\mathrm{SG}(D_3 W_1\,\mathrm{LN}(u))\big), \qquad
    \mathrm{out} = v + \gamma \odot W_5\,\mathrm{SG}\big(W_4\,\mathrm{LN}(v)\big)

with :math:`W_i` 1×1 convolutions, :math:`D_3` a depthwise 3×3 convolution,
:math:`\mathrm{SG}(a, b) = a \odot b` (the channel halves) and
:math:`\mathrm{SCA}(w) = w \odot W\,\mathrm{avgpool}(w)`. The network is a
U-Net of such blocks with a global residual: :math:`g(y) = y + \mathrm{net}(y)`.
Inputs are zero-padded below and to the right to a multiple of
:math:`2^{\text{levels}}` and the output cropped back (the official
``check_image_size``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from weakdeblur.supervisors.base import NetworkSupervisor
from weakdeblur.supervisors.checkpoint import load_weights
from weakdeblur.supervisors.errors import SupervisorError
from weakdeblur.supervisors.tlc import use_local_statistics


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of each pixel, with an affine map."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        y = (x - mean) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x.chunk(2, dim=1)
        return first * second


class NAFBlock(nn.Module):
    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw_channels = channels * dw_expand
        self.conv1 = nn.Conv2d(channels, dw_channels, 1)
        self.conv2 = nn.Conv2d(dw_channels, dw_channels, 3, padding=1, groups=dw_channels)
        self.conv3 = nn.Conv2d(dw_channels // 2, channels, 1)
        self.sca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw_channels // 2, dw_channels // 2, 1)
        )
        self.sg = SimpleGate()
        ffn_channels = ffn_expand * channels
        self.conv4 = nn.Conv2d(channels, ffn_channels, 1)
        self.conv5 = nn.Conv2d(ffn_channels // 2, channels, 1)
        self.norm1 = LayerNorm2d(channels)
        self.norm2 = LayerNorm2d(channels)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """The NAFNet U-Net (official names). GoPro model: ``width=64``,
    ``enc_blk_nums=(1, 1, 1, 28)``, ``middle_blk_num=1``, ``dec_blk_nums=(1, 1, 1, 1)``.

    Returns features as well when asked (:meth:`forward_features`): the
    output of every encoder level and of the middle blocks.
    """

    def __init__(
        self,
        img_channel: int = 3,
        width: int = 16,
        middle_blk_num: int = 1,
        enc_blk_nums: Sequence[int] = (1, 1, 1, 28),
        dec_blk_nums: Sequence[int] = (1, 1, 1, 1),
    ):
        super().__init__()
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()
        channels = width
        for count in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(channels) for _ in range(count)]))
            self.downs.append(nn.Conv2d(channels, 2 * channels, 2, 2))
            channels *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(channels) for _ in range(middle_blk_num)])
        for count in dec_blk_nums:
            self.ups.append(
                nn.Sequential(nn.Conv2d(channels, channels * 2, 1, bias=False), nn.PixelShuffle(2))
            )
            channels //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(channels) for _ in range(count)]))
        self.padder_size = 2 ** len(self.encoders)

    def forward_features(self, inp: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        height, width = inp.shape[-2:]
        pad_h, pad_w = (-height) % self.padder_size, (-width) % self.padder_size
        padded = F.pad(inp, (0, pad_w, 0, pad_h)) if pad_h or pad_w else inp
        x = self.intro(padded)
        skips, features = [], []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            features.append(x)
            x = down(x)
        x = self.middle_blks(x)
        features.append(x)
        for decoder, up, skip in zip(self.decoders, self.ups, skips[::-1], strict=True):
            x = decoder(up(x) + skip)
        out = self.ending(x) + padded
        return out[..., :height, :width], features

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.forward_features(inp)[0]


PADDINGS = ("official", "reflect")


class NAFNetSupervisor(NetworkSupervisor):
    r"""g = NAFNet loaded from a user-supplied checkpoint (official layout, key ``params``).

    Padding (the U-Net needs sizes that are multiples of :math:`2^{\text{levels}}`, 16):

    * ``official``: as the official inference, inside the network
      (``check_image_size``): zeros appended below and to the right, output cropped;
    * ``reflect``: the image is mirrored into the padding before the network
      (the convention of the other supervisors here). Near the bottom and right
      borders the two differ (by up to 0.27 at 61×77 with random weights).

    Args:
        checkpoint: path of the ``.pth`` file.
        img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums: the architecture
            (must match the checkpoint; defaults: NAFNet-GoPro-width64).
        key: the state-dict key in the checkpoint.
        padding: ``official`` (zeros, inside the network) or ``reflect``.
        tlc: run as the official ``NAFNetLocal`` (test-time local converter,
            :mod:`weakdeblur.supervisors.tlc`), as the GoPro test configurations do.
        train_size: (height, width) the TLC windows are calibrated on (official: 256×256).
    """

    def __init__(
        self,
        checkpoint: str | Path | None,
        img_channel: int = 3,
        width: int = 64,
        middle_blk_num: int = 1,
        enc_blk_nums: Sequence[int] = (1, 1, 1, 28),
        dec_blk_nums: Sequence[int] = (1, 1, 1, 1),
        key: str = "params",
        padding: str = "official",
        tlc: bool = False,
        train_size: Sequence[int] = (256, 256),
    ):
        super().__init__()
        if checkpoint is None:
            raise SupervisorError(
                "the nafnet supervisor needs a checkpoint: supervisor.checkpoint=PATH"
            )
        if padding not in PADDINGS:
            raise SupervisorError(
                f"supervisor.padding must be one of {', '.join(PADDINGS)}, got '{padding}'"
            )
        self.net = NAFNet(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)
        load_weights(
            self.net,
            checkpoint,
            key,
            description=f"NAFNet(width={width}, enc={list(enc_blk_nums)}, "
            f"middle={middle_blk_num}, dec={list(dec_blk_nums)}, img_channel={img_channel})",
        )
        if tlc:
            use_local_statistics(self.net, tuple(train_size))
        self.channels = img_channel
        self.padding = padding
        # official: the network zero-pads itself; reflect: we pad first, so it has nothing to pad
        self.stride = self.net.padder_size if padding == "reflect" else 1
        self.freeze()
