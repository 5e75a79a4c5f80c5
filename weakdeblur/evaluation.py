"""Scoring one result against whatever ground truth its sample has."""

from __future__ import annotations

from collections.abc import Callable

import torch

from weakdeblur.colour import luminance
from weakdeblur.data.sample import Sample
from weakdeblur.metrics import LPIPSMetric, aligned_score, grid_kernel_errors


class Evaluator:
    """Levin-protocol scores (``cut``, ``max_shift``) plus LPIPS and kernel error.

    The cut and shift shrink automatically for small images (tests, tiny
    crops) so that at least a 16-pixel square is scored.
    """

    def __init__(self, cut: int = 15, max_shift: int = 10, lpips: LPIPSMetric | None = None):
        self.cut = cut
        self.max_shift = max_shift
        self.lpips = lpips if lpips is not None else LPIPSMetric()

    def _protocol(self, size: int) -> tuple[int, int]:
        cut = min(self.cut, max((size - 16) // 2, 0))
        return cut, min(self.max_shift, cut)

    def image_scores(
        self, image: torch.Tensor, sharp: torch.Tensor, with_lpips: bool = True
    ) -> dict[str, float]:
        """Scores on the luminance channel (colour images are converted to Y first)."""
        image, sharp = luminance(image), luminance(sharp)
        cut, shift = self._protocol(min(sharp.shape[-2:]))
        score = aligned_score(image, sharp, cut=cut, max_shift=shift)
        scores = {
            "psnr": score.psnr,
            "ssim": score.ssim,
            "shift_row": score.shift[0],
            "shift_col": score.shift[1],
        }
        if with_lpips:
            value = self.lpips(score.aligned, score.reference)
            if value is not None:
                scores["lpips"] = value
        return scores

    def progress(self, sample: Sample) -> Callable[[torch.Tensor], dict[str, float]] | None:
        """A cheap scorer for logging steps (aligned PSNR/SSIM, no LPIPS), or ``None``."""
        if sample.sharp is None:
            return None
        sharp = sample.sharp.float().cpu()

        def score(image: torch.Tensor) -> dict[str, float]:
            scores = self.image_scores(image, sharp, with_lpips=False)
            return {"psnr": scores["psnr"], "ssim": scores["ssim"]}

        return score

    def final(self, sample: Sample, image: torch.Tensor, kernel: torch.Tensor) -> dict[str, float]:
        """Scores of the returned estimate and, for reference, of the blurry input."""
        scores: dict[str, float] = {}
        if sample.sharp is not None:
            sharp = sample.sharp.float().cpu()
            scores.update(self.image_scores(image, sharp))
            blurry = self.image_scores(sample.blurry.float().cpu(), sharp, with_lpips=False)
            scores["blurry_psnr"], scores["blurry_ssim"] = blurry["psnr"], blurry["ssim"]
        if sample.kernel is not None:  # per cell for grids of kernels
            scores.update(grid_kernel_errors(kernel, sample.kernel))
        return scores
