import logging
import math

import pytest
import torch
import torch.nn.functional as F

from weakdeblur.metrics import LPIPSMetric, _bilinear_slice, aligned_score, kernel_error, psnr


def textured(size: int = 96, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, size // 4, size // 4, generator=generator)
    return F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def test_identical_images_score_perfectly():
    image = textured()
    score = aligned_score(image, image, cut=15, max_shift=10, quantized=False)
    assert math.isinf(score.psnr)
    assert score.ssim == pytest.approx(1.0, abs=1e-6)
    assert score.shift == (0.0, 0.0)


@pytest.mark.parametrize("row_shift, column_shift", [(2.25, -1.5), (-3.0, 0.75), (0.5, 4.0)])
def test_recovers_known_sub_pixel_shift(row_shift, column_shift):
    big = textured(128, seed=1)
    reference = big[..., 16:112, 16:112]
    # estimate(i, j) = big(16 + i + row_shift, 16 + j + column_shift), bilinear
    estimate = _bilinear_slice(
        _bilinear_slice(big, -1, column_shift, 96, 16), -2, row_shift, 96, 16
    )
    score = aligned_score(estimate, reference, cut=15, max_shift=10, quantized=False)
    assert score.shift == (-row_shift, -column_shift)
    assert score.psnr > 30  # interpolating twice smooths a little


def test_psnr_matches_definition():
    a = torch.zeros(1, 1, 8, 8)
    b = torch.full((1, 1, 8, 8), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)


def test_kernel_error_is_zero_up_to_flip_and_shift_and_positive_otherwise():
    kernel = torch.rand(1, 1, 9, 9)
    assert kernel_error(kernel, kernel) < 1e-6
    assert kernel_error(torch.flip(kernel, dims=(-2, -1)), kernel) < 1e-6
    shifted = F.pad(kernel, (3, 0, 0, 2))
    assert kernel_error(shifted, kernel) < 1e-6
    assert kernel_error(torch.rand(1, 1, 9, 9), kernel) > 0.05


def test_lpips_plumbing_with_random_backbone():
    metric = LPIPSMetric(random_backbone=True)
    image = textured(64)
    assert metric(image, image) == pytest.approx(0.0, abs=1e-6)
    assert metric(image, textured(64, seed=3)) > 0


def test_lpips_missing_backbone_warns_once_and_returns_none(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    metric = LPIPSMetric()
    with caplog.at_level(logging.INFO):
        assert metric(textured(64), textured(64)) is None
        assert metric(textured(64), textured(64)) is None
        assert LPIPSMetric()(textured(64), textured(64)) is None  # the next run on this machine
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "LPIPS" in r.getMessage()]
    assert len(said) == 2
    (level, first), (later_level, later) = said
    assert level == logging.WARNING and "To enable it" in first and "metrics.lpips=false" in first
    assert later_level == logging.INFO and "LPIPS is skipped" in later and "To enable" not in later
