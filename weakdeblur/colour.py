r"""Colour handling: how a colour image is deblurred (top-level ``color`` key).

* ``grey``: images are loaded as luminance (the default; the protocol of the
  Levin set).
* ``y``: the reference implementation's approach for colour photographs: the
  image is converted to YCbCr (ITU-R BT.601, through kornia), only the luminance
  :math:`Y` is deblurred, and the blurry image's chroma is put back,

  .. math::

      \hat x_{\mathrm{RGB}} = \mathrm{YCbCr}^{-1}\big(\hat x_Y,\ \mathrm{Cb}(y),\ \mathrm{Cr}(y)\big).

* ``rgb``: the three channels are deblurred together: G_x has three output
  channels and one kernel blurs every channel.

Metrics are computed on luminance in every mode (:func:`luminance`), so that the
three modes are scored alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import kornia
import torch

from weakdeblur.data.sample import Sample
from weakdeblur.types import Result

MODES = ("grey", "y", "rgb")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"color must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The Y channel of a ``(B, 3, H, W)`` RGB image; other images unchanged."""
    if image.shape[1] != 3:
        return image
    return kornia.color.rgb_to_ycbcr(image)[:, :1]


def split_luminance(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Y, CbCr)`` of an RGB image."""
    ycbcr = kornia.color.rgb_to_ycbcr(image)
    return ycbcr[:, :1], ycbcr[:, 1:]


def with_chroma(y: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """RGB from a luminance ``(B, 1, H, W)`` and a chroma ``(B, 2, H, W)``, clamped to [0, 1]."""
    return kornia.color.ycbcr_to_rgb(torch.cat([y, chroma.to(y)], dim=1)).clamp(0, 1)


@dataclass
class ColourView:
    """What the solver sees of a sample, and how to map its result back to colour.

    ``solve`` is the sample given to the solver and the evaluator; ``show`` is
    the sample the artefacts show (the colour original). For ``color=y`` on an
    RGB image, ``chroma`` is the blurry image's CbCr.
    """

    solve: Sample
    show: Sample
    chroma: torch.Tensor | None = None

    @classmethod
    def of(cls, sample: Sample, mode: str) -> ColourView:
        check_mode(mode)
        if mode != "y" or sample.blurry.shape[1] != 3:
            return cls(sample, sample)
        y, chroma = split_luminance(sample.blurry)
        sharp = luminance(sample.sharp) if sample.sharp is not None else None
        return cls(replace(sample, blurry=y, sharp=sharp), sample, chroma)

    def colour(self, image: torch.Tensor) -> torch.Tensor:
        """A y-sized luminance estimate in colour (unchanged when there is no chroma)."""
        if self.chroma is None or image.shape[1] != 1:
            return image
        return with_chroma(image, self.chroma)

    def result(self, result: Result) -> Result:
        """The result with its image, ŷ and x̄ in colour (for the artefacts)."""
        if self.chroma is None:
            return result
        supervised = result.supervised
        return replace(
            result,
            image=self.colour(result.image),
            blurred=self.colour(result.blurred),
            supervised=self.colour(supervised) if supervised is not None else None,
        )
