r"""G_x: the deep-image-prior encoder-decoder with skip connections.

The architecture follows Ulyanov et al.'s ``skip`` network as configured by
SelfDeblur (Ren et al., CVPR 2020): at each of ``len(channels_down)`` scales,

    deeper: conv3x3 stride 2 → BN → LeakyReLU → [non-local] → conv3x3 → BN → LeakyReLU
            → (next scale) → bilinear ×2 upsampling
    skip:   conv1x1 → BN → LeakyReLU
    merge:  concat(skip, deeper) → BN → conv3x3 → BN → LeakyReLU → conv1x1 → BN → LeakyReLU

followed by a 1×1 output convolution and a sigmoid. Convolutions pad by
reflection. When the upsampled branch is one pixel larger than the skip
branch (odd sizes), both are centre-cropped to the smaller size, so the
output has the input's spatial size for any input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, pad: str = "reflection"
) -> nn.Module:
    padding = (kernel_size - 1) // 2
    layers: list[nn.Module] = []
    if pad == "reflection" and padding > 0:
        layers.append(nn.ReflectionPad2d(padding))
        padding = 0
    elif pad not in ("reflection", "zero"):
        raise ValueError(f"pad must be 'reflection' or 'zero', got {pad!r}")
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=padding))
    return nn.Sequential(*layers) if len(layers) > 1 else layers[0]


def _conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    pad: str = "reflection",
    negative_slope: float = 0.2,
) -> list[nn.Module]:
    return [
        _conv(in_channels, out_channels, kernel_size, stride, pad),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(negative_slope, inplace=True),
    ]


class NonLocalBlock(nn.Module):
    r"""Dot-product non-local block (Wang et al., CVPR 2018), as used by SelfDeblur.

    With :math:`\theta, \phi, g` 1×1 convolutions to ``in_channels // 2``
    channels (:math:`\phi` and :math:`g` followed by 2×2 max-pooling),

    .. math::

        z = x + W\Big(\tfrac{1}{N}\, \theta(x)^\top \phi(x)\; g(x)\Big),

    where :math:`N` is the number of pooled positions and :math:`W` a 1×1
    convolution followed by a BatchNorm initialised to zero (so the block
    starts as the identity).

    The product is computed as :math:`\theta^\top (\phi\, g) / N`, which never forms
    the :math:`HW \times N` affinity matrix. ``reference_arithmetic = True`` computes
    :math:`(\theta^\top \phi / N)\, g` instead, the reference's order: the same maths with
    the reference's float rounding (set by ``seed_mode=reference``, :mod:`weakdeblur.seeding`).
    """

    reference_arithmetic = False

    def __init__(
        self, in_channels: int, inter_channels: int | None = None, sub_sample: bool = True
    ):
        super().__init__()
        self.inter_channels = inter_channels or max(in_channels // 2, 1)
        self.theta = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.pool = nn.MaxPool2d(2) if sub_sample else nn.Identity()
        self.out = nn.Sequential(
            nn.Conv2d(self.inter_channels, in_channels, 1), nn.BatchNorm2d(in_channels)
        )
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference_arithmetic:
            return self._reference_forward(x)
        batch = x.shape[0]
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        phi = self.pool(self.phi(x)).flatten(2)  # (B, C', N)
        g = self.pool(self.g(x)).flatten(2).transpose(1, 2)  # (B, N, C')
        # (theta @ phi / N) @ g, computed in the cheaper order theta @ (phi @ g) / N
        attended = theta @ (phi @ g) / phi.shape[-1]
        attended = attended.transpose(1, 2).reshape(batch, self.inter_channels, *x.shape[-2:])
        return x + self.out(attended)

    def _reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The same maths in the reference's order of operations: ``g`` before ``theta``
        before ``phi`` (autograd then sums the four gradients reaching ``x`` in the
        reference's order), the affinity matrix formed and divided by N first."""
        batch = x.shape[0]
        g = self.pool(self.g(x)).flatten(2).transpose(1, 2)
        theta = self.theta(x).flatten(2).transpose(1, 2)
        phi = self.pool(self.phi(x)).flatten(2)
        attended = (theta @ phi / phi.shape[-1]) @ g
        attended = attended.transpose(1, 2).reshape(batch, self.inter_channels, *x.shape[-2:])
        return self.out(attended) + x

    def reference_init_order(self) -> list[nn.Module]:
        """The layers with random weights in the order the reference constructs them
        (``g``, ``W``'s convolution, ``theta``, ``phi``; see :mod:`weakdeblur.seeding`)."""
        return [self.g, self.out[0], self.theta, self.phi]


def _convolutions(module: nn.Module) -> list[nn.Module]:
    return [layer for layer in module.modules() if isinstance(layer, nn.Conv2d)]


def _centre_crop(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (tensor.shape[-2] - height) // 2
    left = (tensor.shape[-1] - width) // 2
    return tensor[..., top : top + height, left : left + width]


class _Scale(nn.Module):
    """One scale of the skip network: skip branch, deeper branch, merge."""

    def __init__(
        self,
        in_channels: int,
        down: int,
        up: int,
        skip: int,
        deeper_out: int,
        inner: nn.Module | None,
        non_local: bool,
        pad: str,
        upsample_mode: str,
    ):
        super().__init__()
        self.skip = (
            nn.Sequential(*_conv_bn_act(in_channels, skip, 1, pad=pad)) if skip > 0 else None
        )
        deeper = _conv_bn_act(in_channels, down, 3, stride=2, pad=pad)
        if non_local:
            deeper.append(NonLocalBlock(down))
        deeper += _conv_bn_act(down, down, 3, pad=pad)
        if inner is not None:
            deeper.append(inner)
        align = {} if upsample_mode == "nearest" else {"align_corners": False}
        deeper.append(nn.Upsample(scale_factor=2, mode=upsample_mode, **align))
        self.deeper = nn.Sequential(*deeper)
        self.merge = nn.Sequential(
            nn.BatchNorm2d(skip + deeper_out),
            *_conv_bn_act(skip + deeper_out, up, 3, pad=pad),
            *_conv_bn_act(up, up, 1, pad=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.deeper(x)
        if self.skip is None:
            return self.merge(deep)
        shallow = self.skip(x)
        height = min(deep.shape[-2], shallow.shape[-2])
        width = min(deep.shape[-1], shallow.shape[-1])
        merged = torch.cat(
            [_centre_crop(shallow, height, width), _centre_crop(deep, height, width)], dim=1
        )
        return self.merge(merged)

    def reference_init_order(self) -> list[nn.Module]:
        """The layers with random weights in the order the reference ``skip()`` constructs
        them: this scale's skip convolution, its deeper convolutions (with the non-local
        block between them), its two merge convolutions, and only then the next scale."""
        order = _convolutions(self.skip) if self.skip is not None else []
        inner: _Scale | None = None
        for layer in self.deeper:
            if isinstance(layer, _Scale):
                inner = layer
            elif isinstance(layer, NonLocalBlock):
                order += layer.reference_init_order()
            else:
                order += _convolutions(layer)
        order += _convolutions(self.merge)
        if inner is not None:
            order += inner.reference_init_order()
        return order


class SkipNetwork(nn.Module):
    """G_x: deep-image-prior skip network (see module docstring).

    Args:
        in_channels: channels of the input code z_x (8 in SelfDeblur).
        out_channels: image channels (1 grey, 3 RGB).
        channels_down / channels_up / channels_skip: per-scale widths.
        non_local_scales: indices of scales that get a non-local block
            (SelfDeblur: the three deepest, ``[2, 3, 4]``); empty to disable.
        pad: ``reflection`` or ``zero``.
        upsample_mode: ``bilinear`` or ``nearest``.
        sigmoid: squash the output to [0, 1].
    """

    def __init__(
        self,
        in_channels: int = 8,
        out_channels: int = 1,
        channels_down: Sequence[int] = (128, 128, 128, 128, 128),
        channels_up: Sequence[int] = (128, 128, 128, 128, 128),
        channels_skip: Sequence[int] = (16, 16, 16, 16, 16),
        non_local_scales: Sequence[int] = (2, 3, 4),
        pad: str = "reflection",
        upsample_mode: str = "bilinear",
        sigmoid: bool = True,
    ):
        super().__init__()
        if not len(channels_down) == len(channels_up) == len(channels_skip):
            raise ValueError("channels_down, channels_up and channels_skip need the same length")
        self.in_channels = in_channels
        self.out_channels = out_channels
        scales = len(channels_down)
        inner: nn.Module | None = None
        for index in reversed(range(scales)):
            deepest = index == scales - 1
            inner = _Scale(
                in_channels=in_channels if index == 0 else channels_down[index - 1],
                down=channels_down[index],
                up=channels_up[index],
                skip=channels_skip[index],
                deeper_out=channels_down[index] if deepest else channels_up[index + 1],
                inner=inner,
                non_local=index in set(non_local_scales),
                pad=pad,
                upsample_mode=upsample_mode,
            )
        self.body = inner
        head: list[nn.Module] = [_conv(channels_up[0], out_channels, 1, pad=pad)]
        if sigmoid:
            head.append(nn.Sigmoid())
        self.head = nn.Sequential(*head)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(code))

    def reference_init_order(self) -> list[nn.Module]:
        """Every layer with random weights, in the construction order of the reference
        ``skip()`` (outermost scale first, the output convolution last); re-initialising them
        in this order reproduces its weights from the same random stream."""
        return self.body.reference_init_order() + _convolutions(self.head)
