"""Colour modes: YCbCr round trip, luminance-only solving and scoring."""

import pytest
import torch

from weakdeblur.colour import ColourView, check_mode, luminance, split_luminance, with_chroma
from weakdeblur.data import DemoDataset
from weakdeblur.evaluation import Evaluator
from weakdeblur.metrics import LPIPSMetric
from weakdeblur.types import Result


def test_y_to_rgb_round_trip_preserves_chroma():
    torch.manual_seed(0)
    rgb = 0.1 + 0.8 * torch.rand(1, 3, 16, 16)  # inside the gamut, away from clamping
    y, chroma = split_luminance(rgb)
    torch.testing.assert_close(with_chroma(y, chroma), rgb, atol=1e-5, rtol=0)
    # a new luminance keeps the chroma exactly
    new_y = (y + 0.03 * torch.randn_like(y)).clamp(0.3, 0.7)
    _, new_chroma = split_luminance(with_chroma(new_y, chroma))
    torch.testing.assert_close(new_chroma, chroma, atol=1e-5, rtol=0)
    # luminance uses the ITU-R 601 weights
    torch.testing.assert_close(
        luminance(rgb)[0, 0], 0.299 * rgb[0, 0] + 0.587 * rgb[0, 1] + 0.114 * rgb[0, 2]
    )
    grey = torch.rand(1, 1, 8, 8)
    assert luminance(grey) is grey


def test_colour_view_solves_on_luminance_and_shows_colour():
    sample = DemoDataset(
        image="astronaut", size=32, true_kernel_size=5, kernel_size=7, grey=False
    ).load("astronaut32_k5_s0")
    assert sample.blurry.shape[1] == 3
    view = ColourView.of(sample, "y")
    assert view.solve.blurry.shape == (1, 1, 32, 32) and view.solve.sharp.shape == (1, 1, 32, 32)
    assert view.show is sample
    result = Result("a", view.solve.blurry, torch.ones(1, 1, 7, 7) / 49, view.solve.blurry, 1, 1)
    shown = view.result(result)
    # the luminance put back with the blurry chroma is the blurry image
    torch.testing.assert_close(shown.image, sample.blurry, atol=2e-5, rtol=0)
    assert ColourView.of(sample, "rgb").solve is sample
    grey = DemoDataset(size=32, true_kernel_size=5, kernel_size=7).load("camera32_k5_s0")
    assert ColourView.of(grey, "y").chroma is None
    with pytest.raises(ValueError, match="grey, y, rgb"):
        check_mode("cmyk")


def test_colour_scores_are_on_luminance():
    evaluator = Evaluator(cut=4, max_shift=2, lpips=LPIPSMetric(False))
    sharp = torch.rand(1, 3, 32, 32)
    estimate = (sharp + 0.05 * torch.randn_like(sharp)).clamp(0, 1)
    colour = evaluator.image_scores(estimate, sharp)
    grey = evaluator.image_scores(luminance(estimate), luminance(sharp))
    assert colour["psnr"] == pytest.approx(grey["psnr"])
    assert colour["ssim"] == pytest.approx(grey["ssim"])
