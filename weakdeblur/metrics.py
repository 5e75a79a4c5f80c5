r"""Quality metrics, following Levin et al.'s ``comp_upto_shift`` protocol.

Blind deconvolution recovers an image only up to a translation, so the
estimate :math:`\hat x` is aligned to the ground truth :math:`x` before
scoring: both lose ``cut`` pixels at every border, :math:`\hat x` is shifted by
every sub-pixel offset :math:`(s_r, s_c) \in \{-m, -m+\tfrac14, \dots, m\}^2`
(bilinear interpolation) and the shift with the least sum of squared
differences wins. PSNR (peak 1) and SSIM (Gaussian window 11, σ 1.5, valid
filtering, through :func:`piq.ssim`) are computed on that aligned crop.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import piq
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

LPIPS_BACKBONE = "alexnet-owt-7be5be79.pth"


@dataclass
class AlignedScore:
    psnr: float
    ssim: float
    shift: tuple[float, float]  # (row, column) offset applied to the estimate
    aligned: torch.Tensor  # aligned estimate crop (1, C, h, w)
    reference: torch.Tensor  # ground-truth crop (1, C, h, w)


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels, as saving to PNG and reading back does."""
    return torch.round(image.clamp(0, 1) * 255.0) / 255.0


def _bilinear_slice(
    image: torch.Tensor, dim: int, offset: float, length: int, margin: int
) -> torch.Tensor:
    """Samples ``image`` along ``dim`` at positions ``margin + i + offset``, ``i < length`` (bilinear)."""
    floor = math.floor(offset)
    fraction = offset - floor
    low = image.narrow(dim, margin + floor, length)
    if fraction == 0:
        return low
    high = image.narrow(dim, margin + floor + 1, length)
    return low + fraction * (high - low)


def align_to_reference(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    cut: int = 15,
    max_shift: int = 10,
    step: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
    """Levin's ``comp_upto_shift`` alignment.

    Args:
        estimate, reference: ``(1, C, H, W)`` images of the same size.
        cut: pixels removed from every border of the reference.
        max_shift: largest shift searched (pixels); needs ``max_shift <= cut``.
        step: shift grid spacing.

    Returns:
        (aligned estimate crop, reference crop, (row shift, column shift)).
    """
    if estimate.shape != reference.shape:
        raise ValueError(
            f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape"
        )
    if max_shift > cut:
        raise ValueError("max_shift cannot exceed cut")
    height, width = reference.shape[-2:]
    if height - 2 * cut < 8 or width - 2 * cut < 8:
        raise ValueError(f"image {height}x{width} too small for a {cut}-pixel cut")
    estimate = estimate.detach().float()
    reference = reference.detach().float()
    crop_h, crop_w = height - 2 * cut, width - 2 * cut
    target = reference[..., cut : cut + crop_h, cut : cut + crop_w]
    window = estimate[
        ..., cut - max_shift : cut + crop_h + max_shift, cut - max_shift : cut + crop_w + max_shift
    ]
    count = int(round(2 * max_shift / step)) + 1
    offsets = torch.linspace(
        -max_shift, max_shift, count, dtype=torch.float64
    )  # exact multiples of step
    # every column shift at once: (S, 1, C, h + 2m, w)
    by_column = torch.stack(
        [_bilinear_slice(window, -1, offset, crop_w, max_shift) for offset in offsets.tolist()]
    )
    ssd = torch.stack(
        [
            ((_bilinear_slice(by_column, -2, offset, crop_h, max_shift) - target) ** 2)
            .flatten(1)
            .sum(1)
            for offset in offsets.tolist()
        ]
    )  # (row shift, column shift)
    row_index, column_index = divmod(int(torch.argmin(ssd)), count)
    row_shift, column_shift = float(offsets[row_index]), float(offsets[column_index])
    aligned = _bilinear_slice(by_column[column_index], -2, row_shift, crop_h, max_shift)
    return aligned.float(), target.float(), (row_shift, column_shift)


def psnr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    mse = F.mse_loss(estimate.double(), reference.double()).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """Wang et al.'s SSIM (Gaussian 11, σ 1.5, valid filtering, no downsampling)."""
    return float(
        piq.ssim(estimate.clamp(0, 1), reference.clamp(0, 1), data_range=1.0, downsample=False)
    )


def aligned_score(
    estimate: torch.Tensor,
    reference: torch.Tensor,
    cut: int = 15,
    max_shift: int = 10,
    quantized: bool = True,
) -> AlignedScore:
    """PSNR and SSIM after Levin alignment; ``quantized`` scores the 8-bit image a PNG would hold."""
    if quantized:
        estimate = quantize(estimate)
    aligned, target, shift = align_to_reference(estimate, reference, cut, max_shift)
    return AlignedScore(psnr(aligned, target), ssim(aligned, target), shift, aligned, target)


def kernel_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    r"""Relative kernel error up to a 180° rotation and an integer shift.

    .. math::

        e = \min_{R \in \{I, \mathrm{rot}_{180}\}} \min_{s} \frac{\|S_s R \hat k - k\|_2}{\|k\|_2},

    computed exactly for every shift from one cross-correlation:
    :math:`\|a - S_s b\|^2 = \|a\|^2 + \|b\|^2 - 2 (a \star b)_s`.
    """
    estimate = estimate.detach().double().reshape(1, 1, *estimate.shape[-2:])
    reference = reference.detach().double().reshape(1, 1, *reference.shape[-2:])
    estimate = estimate / estimate.sum()
    reference = reference / reference.sum()
    best = math.inf
    ref_energy = reference.pow(2).sum()
    for candidate in (estimate, torch.flip(estimate, dims=(-2, -1))):
        kh, kw = candidate.shape[-2:]
        padded = F.pad(reference, (kw - 1, kw - 1, kh - 1, kh - 1))
        correlation = F.conv2d(padded, candidate)
        squared = ref_energy + candidate.pow(2).sum() - 2 * correlation.max()
        best = min(best, math.sqrt(max(squared.item(), 0.0)))
    return best / math.sqrt(ref_energy.item())


def lpips_backbone_path() -> Path:
    """Where torchvision looks for LPIPS's AlexNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE


def notice_marker() -> Path:
    """The file whose presence says the missing-backbone notice was shown on this machine."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "weakdeblur" / "lpips_notice_shown"


def missing_backbone_notice(reason: str) -> None:
    """The missing LPIPS backbone, said in full once per machine (a warning that says how to
    enable LPIPS), then in one short info line per run."""
    marker = notice_marker()
    if marker.exists():
        log.info("%s: LPIPS is skipped (docs/running.md, 'LPIPS')", reason)
        return
    log.warning(
        "%s; LPIPS is skipped. To enable it, put torchvision's AlexNet weights %s there "
        '(on a machine with internet: python -c "import torchvision; '
        "torchvision.models.alexnet(weights='DEFAULT')\" fills the cache; or point TORCH_HOME "
        "at a cache that has them); metrics.lpips=false turns LPIPS off. This notice is shown "
        "once; later runs say it in one line.",
        reason,
        LPIPS_BACKBONE,
    )
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only home: the notice stays a warning
        pass


class LPIPSMetric:
    """LPIPS (AlexNet) when its backbone weights are in the torch hub cache.

    Nothing is downloaded: if ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``
    is missing, one warning is logged and :meth:`__call__` returns ``None``.
    ``random_backbone=True`` builds the network with untrained AlexNet
    features (tests of the plumbing only; the numbers are meaningless).
    """

    def __init__(self, enabled: bool = True, random_backbone: bool = False):
        self.enabled = enabled
        self.random_backbone = random_backbone
        self._model = None
        self._unavailable_reason: str | None = None if enabled else "disabled"

    @property
    def available(self) -> bool:
        self._ensure()
        return self._model is not None

    def _ensure(self) -> None:
        if self._model is not None or self._unavailable_reason is not None:
            return
        if not self.random_backbone and not lpips_backbone_path().is_file():
            self._unavailable_reason = f"LPIPS backbone not found at {lpips_backbone_path()}"
            missing_backbone_notice(self._unavailable_reason)
            return
        if not self.random_backbone:
            # torchvision reads the cached backbone with weights_only=False: check it first
            from weakdeblur.supervisors.checkpoint import load_checkpoint
            from weakdeblur.supervisors.errors import SupervisorError

            try:
                load_checkpoint(lpips_backbone_path(), "LPIPS backbone")
            except SupervisorError as error:
                self._unavailable_reason = str(error)
                log.error("%s; LPIPS is skipped", error)
                return
        import lpips

        os.environ.setdefault("TORCH_HOME", str(Path(torch.hub.get_dir()).parent))
        self._model = lpips.LPIPS(
            net="alex", pretrained=True, pnet_rand=self.random_backbone, verbose=False
        ).eval()
        for parameter in self._model.parameters():
            parameter.requires_grad_(False)

    def __call__(self, estimate: torch.Tensor, reference: torch.Tensor) -> float | None:
        self._ensure()
        if self._model is None:
            return None
        if estimate.shape[1] == 1:
            estimate, reference = estimate.repeat(1, 3, 1, 1), reference.repeat(1, 3, 1, 1)
        with torch.no_grad():
            value = self._model(estimate.float().cpu(), reference.float().cpu(), normalize=True)
        return float(value.mean())


def _cells(kernel: torch.Tensor) -> list[torch.Tensor]:
    """The kernels of a uniform ``(1, 1, h, w)`` or grid ``(1, P, Q, h, w)`` tensor."""
    if kernel.ndim == 5:
        return list(kernel[0].flatten(0, 1))
    return [kernel.reshape(*kernel.shape[-2:])]


def grid_kernel_errors(estimate: torch.Tensor, reference: torch.Tensor) -> dict[str, object]:
    r"""Kernel error for uniform or grid kernels (``(1, P, Q, h, w)``).

    * same grid: per-cell :func:`kernel_error` against the cell's ground truth;
    * one side uniform: that kernel against every cell of the other;
    * different grids: no score (an empty dict).

    Returns ``kernel_error`` (the mean over cells) and, for more than one cell,
    ``kernel_error_cells`` (row-major list).
    """
    estimated, true = _cells(estimate), _cells(reference)
    if len(estimated) == 1:
        estimated = estimated * len(true)
    elif len(true) == 1:
        true = true * len(estimated)
    elif estimate.shape[1:3] != reference.shape[1:3]:
        return {}
    errors = [kernel_error(e, t) for e, t in zip(estimated, true, strict=True)]
    scores: dict[str, object] = {"kernel_error": sum(errors) / len(errors)}
    if len(errors) > 1:
        scores["kernel_error_cells"] = errors
    return scores
