"""Scoring one result against whatever ground truth its sample has."""

from __future__ import annotations

from collections.abc import Callable

import torch

from weakdeblur.colour import luminance
from weakdeblur.data.sample import Sample
from weakdeblur.metrics import LPIPSMetric, align_to_reference, aligned_score, grid_kernel_errors
from weakdeblur.nonblind import blur, deconvolve


class Evaluator:
    """Levin-protocol scores (``cut``, ``max_shift``) plus LPIPS and kernel error.

    The cut and shift shrink automatically for small images (tests, tiny
    crops) so that at least a 16-pixel square is scored.
    """

    def __init__(
        self,
        cut: int = 15,
        max_shift: int = 10,
        lpips: LPIPSMetric | None = None,
        error_ratio: bool = True,
    ):
        self.cut = cut
        self.max_shift = max_shift
        self.lpips = lpips if lpips is not None else LPIPSMetric()
        self.with_error_ratio = error_ratio

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
            uniform = kernel.ndim == 4 and sample.kernel.ndim == 4
            if self.with_error_ratio and uniform and sample.sharp is not None:
                scores["error_ratio"] = self.error_ratio(sample, kernel)
        return scores

    def _aligned_ssd(self, image: torch.Tensor, reference: torch.Tensor) -> float:
        cut, shift = self._protocol(min(reference.shape[-2:]))
        aligned, target, _ = align_to_reference(image, reference, cut=cut, max_shift=shift)
        return float(((aligned.double() - target.double()) ** 2).sum())

    def true_kernel(self, sample: Sample) -> torch.Tensor:
        """The ground-truth kernel in correlation orientation.

        Ground-truth kernels come in either orientation (Levin's kernels 4 and 8
        are stored for true convolution): the one whose blur of the sharp image
        best explains the blurry one, after alignment, is taken.
        """
        sharp, blurry = sample.sharp.float().cpu(), sample.blurry.float().cpu()
        candidates = [sample.kernel, torch.flip(sample.kernel, dims=(-2, -1))]
        errors = [self._aligned_ssd(blur(sharp, k.float().cpu()), blurry) for k in candidates]
        return candidates[min(range(2), key=errors.__getitem__)].float().cpu()

    def error_ratio(self, sample: Sample, kernel: torch.Tensor) -> float:
        r"""Levin et al.'s error ratio of an estimated kernel :math:`\hat k`:

        .. math::

            \mathrm{ER} = \frac{\|D(y, \hat k) - x\|_2}{\|D(y, k) - x\|_2},

        where :math:`D` is the same non-blind deconvolution
        (:func:`weakdeblur.nonblind.deconvolve`), :math:`k` the true kernel
        (orientation from :meth:`true_kernel`) and both deconvolutions are
        aligned to :math:`x` by the Levin protocol before the norms are taken.
        1 means the estimated kernel is as good as the true one for deconvolution.
        """
        sharp, blurry = sample.sharp.float().cpu(), sample.blurry.float().cpu()
        estimated = deconvolve(blurry, kernel.float().cpu())
        reference = deconvolve(blurry, self.true_kernel(sample))
        return (self._aligned_ssd(estimated, sharp) / self._aligned_ssd(reference, sharp)) ** 0.5
