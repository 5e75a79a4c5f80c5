r"""Restormer (Zamir, Arora, Khan, Hayat, Khan, Yang, "Restormer: Efficient Transformer
for High-Resolution Image Restoration", CVPR 2022).

Module and parameter names follow the official implementation
(``basicsr/models/archs/restormer_arch.py``: ``patch_embed.proj``,
``encoder_level1`` … ``latent``, ``down1_2``, ``up4_3``, ``reduce_chan_level3``,
``decoder_level1``, ``refinement``, ``output``; blocks with ``norm1.body``,
``attn.temperature``, ``attn.qkv``, ``attn.qkv_dwconv``, ``attn.project_out``,
``ffn.project_in``, ``ffn.dwconv``, ``ffn.project_out``) so that the official
``motion_deblurring.pth`` (``torch.load(path)["params"]``) loads with
``strict=True``. The code is written here from the paper's equations.

A transformer block on features :math:`u` (C channels, h×w pixels) computes

.. math::

    v = u + \mathrm{MDTA}(\mathrm{LN}(u)), \qquad \mathrm{out} = v + \mathrm{GDFN}(\mathrm{LN}(v)).

*LN* normalises each pixel over its channels, with :math:`\sigma^2` the
(biased) channel variance and :math:`\mu` the channel mean:
``WithBias`` :math:`(u - \mu)/\sqrt{\sigma^2 + 10^{-5}}\,w + b`;
``BiasFree`` :math:`u/\sqrt{\sigma^2 + 10^{-5}}\,w` (not centred, no bias).

*MDTA* (multi-Dconv head transposed attention) attends across channels, not
pixels: :math:`[Q; K; V] = D_3 W_1 u` (1×1 then depthwise 3×3 convolution),
split into heads of :math:`c = C/\text{heads}` channels, each channel a
vector of :math:`hw` values. With :math:`\hat Q, \hat K` L2-normalised along
the pixels and a learnt temperature :math:`\tau` per head,

.. math::

    \mathrm{MDTA}(u) = W_p\, \mathrm{softmax}\big(\tau\, \hat Q \hat K^\top\big)\, V,
    \qquad \hat Q \hat K^\top \in \mathbb{R}^{c \times c}.

*GDFN* (gated-Dconv feed-forward network), hidden width
:math:`\lfloor \gamma C \rfloor` (:math:`\gamma` = 2.66):
:math:`[a; b] = D_3 W_{in} u`, :math:`\mathrm{GDFN}(u) = W_{out}(\mathrm{GELU}(a) \odot b)`.

The U-Net has four levels (channels C, 2C, 4C, 8C). Downsampling is a 3×3
convolution halving the channels followed by pixel unshuffle (×4 channels,
half the size); upsampling a 3×3 convolution doubling them followed by pixel
shuffle. Decoder levels 3 and 2 concatenate the skip and reduce the channels
with a 1×1 convolution; level 1 concatenates without reduction (2C). After
the refinement blocks a 3×3 ``output`` convolution adds the input:
:math:`g(y) = y + \mathrm{net}(y)`. Sizes must be multiples of 8; the
official test pads by reflection (:class:`RestormerSupervisor` does).
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

LAYER_NORMS = ("WithBias", "BiasFree")


class ChannelNorm(nn.Module):
    """Per-pixel normalisation over channels (parameters ``weight`` and, WithBias, ``bias``)."""

    def __init__(self, channels: int, with_bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            channels_last = x.permute(0, 2, 3, 1)
            normed = F.layer_norm(channels_last, self.weight.shape, self.weight, self.bias, 1e-5)
            return normed.permute(0, 3, 1, 2)
        variance = x.var(dim=1, keepdim=True, unbiased=False)
        return x / torch.sqrt(variance + 1e-5) * self.weight.view(1, -1, 1, 1)


class LayerNorm(nn.Module):
    """The official wrapper (its parameters live under ``body``)."""

    def __init__(self, channels: int, layer_norm_type: str):
        super().__init__()
        self.body = ChannelNorm(channels, with_bias=layer_norm_type == "WithBias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FeedForward(nn.Module):
    """GDFN: 1×1 conv to 2 × hidden, depthwise 3×3, GELU gate, 1×1 conv back."""

    def __init__(self, channels: int, expansion: float, bias: bool):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class Attention(nn.Module):
    """MDTA: attention between the channels of each head, with a learnt temperature."""

    def __init__(self, channels: int, heads: int, bias: bool):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            channels * 3, channels * 3, 3, padding=1, groups=channels * 3, bias=bias
        )
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        # (B, 3C, h, w) -> three (B, heads, C/heads, h*w)
        query, key, value = (
            part.reshape(batch, self.heads, channels // self.heads, height * width)
            for part in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        )
        query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
        weights = (query @ key.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        out = (weights @ value).reshape(batch, channels, height, width)
        return self.project_out(out)


class TransformerBlock(nn.Module):
    def __init__(
        self, channels: int, heads: int, expansion: float, bias: bool, layer_norm_type: str
    ):
        super().__init__()
        self.norm1 = LayerNorm(channels, layer_norm_type)
        self.attn = Attention(channels, heads, bias)
        self.norm2 = LayerNorm(channels, layer_norm_type)
        self.ffn = FeedForward(channels, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """A 3×3 convolution without bias from the image to ``dim`` channels."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """C → C/2 channels (3×3 conv), then pixel unshuffle: 2C channels at half the size."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """C → 2C channels (3×3 conv), then pixel shuffle: C/2 channels at twice the size."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Restormer(nn.Module):
    """The Restormer U-Net (official names and argument names). Defaults: the
    motion-deblurring model (``Motion_Deblurring/Options/Deblurring_Restormer.yml``).
    The dual-pixel variant (``dual_pixel_task``) is not implemented.

    :meth:`forward_features` also returns the outputs of the three encoder levels
    and of the latent level.
    """

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",  # the official name
    ):
        super().__init__()
        if LayerNorm_type not in LAYER_NORMS:
            raise SupervisorError(
                f"LayerNorm_type must be one of {', '.join(LAYER_NORMS)}, got '{LayerNorm_type}'"
            )

        def level(channels: int, count: int, head_count: int) -> nn.Sequential:
            return nn.Sequential(
                *[
                    TransformerBlock(
                        channels, head_count, ffn_expansion_factor, bias, LayerNorm_type
                    )
                    for _ in range(count)
                ]
            )

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = level(dim, num_blocks[0], heads[0])
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = level(dim * 2, num_blocks[1], heads[1])
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = level(dim * 4, num_blocks[2], heads[2])
        self.down3_4 = Downsample(dim * 4)
        self.latent = level(dim * 8, num_blocks[3], heads[3])
        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = level(dim * 4, num_blocks[2], heads[2])
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = level(dim * 2, num_blocks[1], heads[1])
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = level(dim * 2, num_blocks[0], heads[0])
        self.refinement = level(dim * 2, num_refinement_blocks, heads[0])
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward_features(self, inp: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        level1 = self.encoder_level1(self.patch_embed(inp))
        level2 = self.encoder_level2(self.down1_2(level1))
        level3 = self.encoder_level3(self.down2_3(level2))
        latent = self.latent(self.down3_4(level3))
        x = self.reduce_chan_level3(torch.cat([self.up4_3(latent), level3], 1))
        x = self.decoder_level3(x)
        x = self.reduce_chan_level2(torch.cat([self.up3_2(x), level2], 1))
        x = self.decoder_level2(x)
        x = self.decoder_level1(torch.cat([self.up2_1(x), level1], 1))
        out = self.output(self.refinement(x)) + inp
        return out, [level1, level2, level3, latent]

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.forward_features(inp)[0]


class RestormerSupervisor(NetworkSupervisor):
    """g = Restormer loaded from a user-supplied checkpoint (official layout, key ``params``),
    run as the official test: RGB, reflection padding to a multiple of 8, output
    cropped (and clamped to [0, 1]). Grey inputs are repeated to RGB and the output
    converted back to grey.

    Args:
        checkpoint: path of the ``.pth`` file (e.g. ``motion_deblurring.pth``).
        inp_channels … LayerNorm_type: the architecture (defaults: motion deblurring).
        key: the state-dict key in the checkpoint.
    """

    def __init__(
        self,
        checkpoint: str | Path | None,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",  # the official name
        key: str = "params",
    ):
        super().__init__()
        if checkpoint is None:
            raise SupervisorError(
                "the restormer supervisor needs a checkpoint: supervisor.checkpoint=PATH"
            )
        if out_channels != inp_channels:
            raise SupervisorError(
                f"Restormer adds its input to its output: out_channels ({out_channels}) "
                f"must equal inp_channels ({inp_channels})"
            )
        self.net = Restormer(
            inp_channels,
            out_channels,
            dim,
            num_blocks,
            num_refinement_blocks,
            heads,
            ffn_expansion_factor,
            bias,
            LayerNorm_type,
        )
        load_weights(
            self.net,
            checkpoint,
            key,
            description=f"Restormer(dim={dim}, num_blocks={list(num_blocks)}, "
            f"num_refinement_blocks={num_refinement_blocks}, heads={list(heads)}, "
            f"ffn_expansion_factor={ffn_expansion_factor}, bias={bias}, "
            f"LayerNorm_type={LayerNorm_type}, inp_channels={inp_channels})",
        )
        self.channels = inp_channels
        self.stride = 8
        self.freeze()
