import pytest
import torch
import torch.nn.functional as F

from weakdeblur.physics import UniformBlur, blur_same, crop_to_observed


def direct_valid_correlation(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """y[i, j] = sum_{u, v} k[u, v] x[i + u, j + v], written as explicit loops."""
    kh, kw = kernel.shape
    height, width = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = torch.zeros(height, width, dtype=image.dtype)
    for i in range(height):
        for j in range(width):
            out[i, j] = (kernel * image[i : i + kh, j : j + kw]).sum()
    return out


@pytest.mark.parametrize("kernel_size", [(3, 3), (4, 5), (5, 2)])
def test_forward_equals_direct_computation(kernel_size):
    image = torch.rand(1, 1, 12, 11, dtype=torch.float64)
    kernel = torch.rand(1, 1, *kernel_size, dtype=torch.float64)
    kernel /= kernel.sum()
    expected = direct_valid_correlation(image[0, 0], kernel[0, 0])
    observed = UniformBlur()(image, kernel)
    assert observed.shape == (1, 1, 12 - kernel_size[0] + 1, 11 - kernel_size[1] + 1)
    torch.testing.assert_close(observed[0, 0], expected)


def test_batched_kernels_apply_per_image_and_channel():
    images = torch.rand(3, 2, 10, 10, dtype=torch.float64)
    kernels = torch.rand(3, 1, 3, 3, dtype=torch.float64)
    out = UniformBlur()(images, kernels)
    for b in range(3):
        for c in range(2):
            torch.testing.assert_close(
                out[b, c], direct_valid_correlation(images[b, c], kernels[b, 0])
            )


def test_adjoint_identity():
    """<A x, r> = <x, A^T r> for random x, r."""
    blur = UniformBlur()
    kernel = torch.rand(2, 1, 5, 4, dtype=torch.float64)
    latent = torch.rand(2, 1, 16, 15, dtype=torch.float64)
    residual = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    left = (blur(latent, kernel) * residual).sum()
    right = (latent * blur.adjoint(residual, kernel)).sum()
    torch.testing.assert_close(left, right)
    assert blur.adjoint(residual, kernel).shape == latent.shape


def test_normalised_kernel_preserves_constants_and_is_linear():
    blur = UniformBlur()
    kernel = torch.rand(1, 1, 7, 7, dtype=torch.float64)
    kernel /= kernel.sum()
    constant = torch.full((1, 1, 20, 20), 0.3, dtype=torch.float64)
    torch.testing.assert_close(
        blur(constant, kernel), torch.full((1, 1, 14, 14), 0.3, dtype=torch.float64)
    )
    a, b = torch.rand(2, 1, 1, 20, 20, dtype=torch.float64)
    torch.testing.assert_close(
        blur(2 * a - 3 * b, kernel), 2 * blur(a, kernel) - 3 * blur(b, kernel)
    )


def test_latent_size_and_crop_round_trip():
    blur = UniformBlur()
    assert blur.latent_size((64, 60), (13, 12)) == (76, 71)
    latent = torch.arange(76 * 71, dtype=torch.float32).reshape(1, 1, 76, 71)
    crop = crop_to_observed(latent, (13, 12))
    assert crop.shape[-2:] == (64, 60)
    assert crop[0, 0, 0, 0] == latent[0, 0, 6, 5]  # offset ((kh-1)//2, (kw-1)//2)


def test_blur_same_with_delta_is_identity_and_matches_centre():
    image = torch.rand(1, 1, 20, 20)
    delta = torch.zeros(1, 1, 5, 5)
    delta[..., 2, 2] = 1
    torch.testing.assert_close(blur_same(image, delta), image)
    kernel = torch.rand(1, 1, 5, 5)
    same = blur_same(image, kernel, border="constant")
    valid = UniformBlur()(image, kernel)
    torch.testing.assert_close(same[..., 2:-2, 2:-2], valid)
    assert F.mse_loss(blur_same(image, kernel), image) > 0
