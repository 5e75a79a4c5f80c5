import pytest
import torch
import torch.nn.functional as F

from weakdeblur.losses import FidelityLoss, ZeroPaddedSSIM


def reference_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM with an 11x11 Gaussian (sigma 1.5) window and zero padding, from the formula."""
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]

    def blur(t):
        return F.conv2d(t, window, padding=5)

    mu1, mu2 = blur(a), blur(b)
    s11, s22, s12 = blur(a * a) - mu1**2, blur(b * b) - mu2**2, blur(a * b) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    return (
        ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    ).mean()


def test_zero_padded_ssim_matches_formula():
    a = torch.rand(1, 1, 24, 20, dtype=torch.float64)
    b = (a + 0.1 * torch.rand_like(a)).clamp(0, 1)
    ssim = ZeroPaddedSSIM().double()
    torch.testing.assert_close(ssim(a, b), reference_ssim(a, b))
    assert ssim(a, a).item() == pytest.approx(1.0)


def test_fidelity_switches_from_mse_to_ssim_at_fraction_of_budget():
    loss = FidelityLoss(switch_fraction=0.2)
    a, b = torch.rand(2, 1, 1, 16, 16)
    assert loss.switch_iteration(5000) == 1000
    assert loss.switch_iteration(1500) == 300
    torch.testing.assert_close(loss(a, b, 299, 1500), F.mse_loss(a, b))
    torch.testing.assert_close(loss(a, b, 300, 1500), 1 - ZeroPaddedSSIM()(a, b))
    with pytest.raises(ValueError):
        FidelityLoss(switch_fraction=1.5)
