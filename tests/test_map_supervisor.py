"""The MAP supervisor: L0 blind kernel estimation, the affine g and its gradient, clear refusals."""

import pytest
import torch
import torch.nn.functional as F

from weakdeblur.blind import (
    BlindDeconvolutionError,
    centre_kernel,
    estimate_kernel,
    kernel_from_spectrum,
    pyramid_sizes,
    smooth_periodic_pad,
    spectrum,
)
from weakdeblur.data import ShakeDataset
from weakdeblur.data.sample import Sample
from weakdeblur.metrics import aligned_score, kernel_error
from weakdeblur.supervisors import MAPSupervisor, SupervisorError


@pytest.fixture(scope="module")
def shaken() -> Sample:
    """A 112-px crop of scikit-image's camera, blurred by an asymmetric 11-px camera-shake kernel."""
    source = ShakeDataset(photos=["camera"], kernel_sizes=[11], size=112, noise=0.005, seed=0)
    return source.load(source.names()[0])


def test_spectrum_round_trip_and_correlation_orientation():
    torch.manual_seed(0)
    kernel = torch.rand(7, 5, dtype=torch.float64)
    torch.testing.assert_close(kernel_from_spectrum(spectrum(kernel, (32, 40)), (7, 5)), kernel)
    image = torch.rand(1, 1, 40, 40, dtype=torch.float64)
    circular = torch.fft.ifft2(torch.fft.fft2(image) * spectrum(kernel, (40, 40)).conj()).real
    valid = F.conv2d(image, kernel[None, None])  # F.conv2d is a correlation
    torch.testing.assert_close(circular[..., 3:-3, 2:-2], valid)


def test_helpers_pyramid_padding_and_centring():
    assert pyramid_sizes(27) == [7, 11, 15, 21, 27]
    assert all(size % 2 == 1 for size in pyramid_sizes(20))
    image = torch.rand(10, 12, dtype=torch.float64)
    padded = smooth_periodic_pad(image, (16, 15))
    torch.testing.assert_close(padded[:10, :12], image)
    # periodic extension is continuous: the wrap-around steps are no larger than inside
    assert (padded[0] - padded[-1]).abs().max() <= (image[1:] - image[:-1]).abs().max() + 1e-12
    off = torch.zeros(9, 9, dtype=torch.float64)
    off[1, 2] = 1.0
    assert centre_kernel(off)[4, 4] == 1.0


def test_map_recovers_a_known_kernel_and_beats_the_blurry_input(shaken):
    estimate = estimate_kernel(shaken.blurry, shaken.kernel_size).kernel
    assert estimate.shape == (11, 11)
    assert abs(float(estimate.sum()) - 1) < 1e-6 and float(estimate.min()) >= 0
    delta = torch.zeros(1, 1, 3, 3)
    delta[..., 1, 1] = 1
    error = kernel_error(estimate, shaken.kernel)
    assert error < 0.5 * kernel_error(delta, shaken.kernel), error
    g = MAPSupervisor()
    g.prepare(shaken)
    restored = g(shaken.blurry)
    blurry_psnr = aligned_score(shaken.blurry, shaken.sharp, cut=10, max_shift=5).psnr
    restored_psnr = aligned_score(restored, shaken.sharp, cut=10, max_shift=5).psnr
    assert restored_psnr > blurry_psnr + 1.0, (blurry_psnr, restored_psnr)
    torch.testing.assert_close(g.kernel_estimate(shaken)[0, 0], estimate.float())


def test_g_is_affine_exact_at_y_and_passes_a_gradient_check():
    source = ShakeDataset(photos=["camera"], kernel_sizes=[5], size=20, noise=0.0, seed=0)
    sample = source.load(source.names()[0])
    g = MAPSupervisor()
    g.prepare(sample)
    restored, _ = g.estimate(sample)
    torch.testing.assert_close(g(sample.blurry), restored.clamp(0, 1))  # g(y) = x̄
    observed = sample.blurry.double()
    base = g(observed)
    interior = (base > 0.05) & (base < 0.95)  # away from the [0, 1] clamp
    assert interior.sum() > 50

    def moved(step):
        return g(observed + step)[interior]

    # the Jacobian of g is the fixed linear map D(·; k̄), checked against finite differences
    step = (1e-3 * torch.randn_like(observed)).requires_grad_()
    assert torch.autograd.gradcheck(moved, (step,), eps=1e-6, atol=1e-6)
    # and g is affine: g(y + 2a) - g(y) = 2 (g(y + a) - g(y))
    a = 1e-3 * torch.randn_like(observed)
    first, second = (g(observed + a) - base)[interior], (g(observed + 2 * a) - base)[interior]
    torch.testing.assert_close(second, 2 * first, atol=1e-12, rtol=1e-9)


def test_kernel_as_large_as_the_image_gets_one_clear_message():
    with pytest.raises(BlindDeconvolutionError, match="at least twice as large"):
        estimate_kernel(torch.rand(1, 1, 20, 20), 21)
    sample = Sample("tiny", torch.rand(1, 1, 12, 12), (5, 5))
    g = MAPSupervisor()
    with pytest.raises(SupervisorError, match="supervisor=map cannot estimate a kernel for tiny"):
        g.prepare(Sample("tiny", torch.rand(1, 1, 12, 12), (11, 11)))
    g.prepare(sample)  # a size it can handle
    with pytest.raises(SupervisorError, match="observation's size"):
        g(torch.rand(1, 1, 10, 10))


def test_map_supervisor_refuses_bad_settings():
    with pytest.raises(SupervisorError, match="xbar"):
        MAPSupervisor(xbar="wiener")
