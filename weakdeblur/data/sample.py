"""The unit of work: one blurry image with whatever ground truth exists."""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DataError(Exception):
    """A user-caused data problem (missing file, bad image, bad size): one clear message."""


@dataclass
class Sample:
    """One blurry observation.

    Attributes:
        name: identifier used for output folders (no extension).
        blurry: ``(1, C, H, W)`` float32 in [0, 1].
        kernel_size: ``(kh, kw)`` of the kernel to estimate.
        sharp: ground-truth sharp image of the same size, if known.
        kernel: ground-truth kernel ``(1, 1, h, w)`` summing to one, if known; for a
            spatially varying blur, one kernel per cell of a grid, ``(1, P, Q, h, w)``.
    """

    name: str
    blurry: torch.Tensor
    kernel_size: tuple[int, int]
    sharp: torch.Tensor | None = None
    kernel: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.blurry.ndim != 4 or self.blurry.shape[0] != 1:
            raise DataError(
                f"{self.name}: expected a (1, C, H, W) image, got shape {tuple(self.blurry.shape)}"
            )
        height, width = self.blurry.shape[-2:]
        kh, kw = self.kernel_size
        if kh < 1 or kw < 1:
            raise DataError(f"{self.name}: kernel size {kh}x{kw} must be positive")
        if kh >= height or kw >= width:
            raise DataError(
                f"{self.name}: kernel size {kh}x{kw} is not smaller than the image ({height}x{width}); "
                "use a smaller kernel_size or a larger crop"
            )
        if self.sharp is not None and self.sharp.shape != self.blurry.shape:
            raise DataError(
                f"{self.name}: ground truth shape {tuple(self.sharp.shape)} differs from the blurry image {tuple(self.blurry.shape)}"
            )

    @property
    def has_ground_truth(self) -> bool:
        return self.sharp is not None
