"""Non-blind deconvolution and the error ratio, on real numbers."""

import pytest
import torch
import torch.nn.functional as F

from weakdeblur.data import DemoDataset
from weakdeblur.data.kernels import camera_shake_kernel
from weakdeblur.evaluation import Evaluator
from weakdeblur.metrics import LPIPSMetric, aligned_score
from weakdeblur.nonblind import blur, deconvolve


def test_blur_is_the_centred_circular_correlation_of_conv2d():
    image, kernel = torch.rand(1, 1, 24, 20), torch.rand(1, 1, 5, 7)
    expected = F.conv2d(F.pad(image, (3, 3, 2, 2), mode="circular"), kernel / kernel.sum())
    assert torch.allclose(blur(image, kernel), expected, atol=1e-5)


def synthetic(size: int = 96, kernel_size: int = 11, noise: float = 0.005):
    """A camera crop blurred (valid correlation, cropped to the sharp image's centre) plus noise."""
    source = DemoDataset(
        size=size + kernel_size - 1, offset=(100, 200), true_kernel_size=kernel_size, noise=0.0
    )
    sharp_large = source.load(source.name).sharp
    kernel = torch.from_numpy(camera_shake_kernel(kernel_size, seed=0))[None, None].float()
    blurry = F.conv2d(sharp_large, kernel)
    generator = torch.Generator().manual_seed(0)
    blurry = (blurry + noise * torch.randn(blurry.shape, generator=generator)).clamp(0, 1)
    pad = (kernel_size - 1) // 2
    sharp = sharp_large[..., pad : pad + size, pad : pad + size]
    return blurry, sharp, kernel


@pytest.mark.parametrize("alpha", [1.0, 2.0 / 3.0])
def test_deconvolution_with_the_true_kernel_beats_the_blurry_input(alpha):
    blurry, sharp, kernel = synthetic()
    before = aligned_score(blurry, sharp, cut=10, max_shift=5).psnr
    after = aligned_score(deconvolve(blurry, kernel, alpha=alpha), sharp, cut=10, max_shift=5).psnr
    assert after > before + 4.0, (before, after)
    # the wrong (flipped) orientation of an asymmetric kernel does clearly worse
    flipped = deconvolve(blurry, torch.flip(kernel, dims=(-2, -1)), alpha=alpha)
    assert aligned_score(flipped, sharp, cut=10, max_shift=5).psnr < after - 1.0


def test_deconvolution_of_a_sharp_image_with_a_dirac_changes_little():
    _, sharp, _ = synthetic()
    dirac = torch.zeros(1, 1, 5, 5)
    dirac[..., 2, 2] = 1
    assert aligned_score(deconvolve(sharp, dirac), sharp, cut=10, max_shift=5).psnr > 30


def sample_with_truth():
    blurry, sharp, kernel = synthetic()
    from weakdeblur.data.sample import Sample

    return Sample("synthetic", blurry, (11, 11), sharp, kernel)


def test_error_ratio_is_one_for_the_true_kernel_and_larger_for_a_wrong_one():
    evaluator = Evaluator(cut=10, max_shift=5, lpips=LPIPSMetric(False))
    sample = sample_with_truth()
    assert evaluator.error_ratio(sample, sample.kernel) == pytest.approx(1.0, abs=1e-6)
    dirac = torch.zeros(1, 1, 11, 11)
    dirac[..., 5, 5] = 1
    assert evaluator.error_ratio(sample, dirac) > 1.3


def test_true_kernel_orientation_is_the_one_that_explains_the_blur():
    evaluator = Evaluator(cut=10, max_shift=5, lpips=LPIPSMetric(False))
    sample = sample_with_truth()
    correct = sample.kernel.clone()
    sample.kernel = torch.flip(correct, dims=(-2, -1))  # stored for true convolution
    assert torch.equal(evaluator.true_kernel(sample), correct)
    # so the estimate in correlation orientation still scores 1
    assert evaluator.error_ratio(sample, correct) == pytest.approx(1.0, abs=1e-6)
    assert "error_ratio" in evaluator.final(sample, sample.blurry, correct)
