import pytest
import torch

from weakdeblur.generators import KernelMLP, NonLocalBlock, SkipNetwork
from weakdeblur.physics import UniformBlur


@pytest.mark.parametrize("kernel_size", [(13, 13), (14, 14), (27, 27), (12, 17)])
def test_shapes_for_odd_and_even_kernels(kernel_size):
    observed = (33, 30)
    latent_size = UniformBlur.latent_size(observed, kernel_size)
    net = SkipNetwork(channels_down=[8] * 5, channels_up=[8] * 5, channels_skip=[2] * 5)
    code = torch.rand(1, 8, *latent_size) * 0.1
    latent = net(code)
    assert latent.shape == (1, 1, *latent_size)
    assert latent.min() >= 0 and latent.max() <= 1
    kernel = KernelMLP(kernel_size)(torch.rand(200) * 0.1)
    assert kernel.shape == (1, 1, *kernel_size)
    assert torch.all(kernel >= 0)
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0))
    assert UniformBlur()(latent, kernel).shape == (1, 1, *observed)


def test_paper_generator_size_and_non_local_blocks():
    net = SkipNetwork()
    blocks = [m for m in net.modules() if isinstance(m, NonLocalBlock)]
    assert len(blocks) == 3
    assert SkipNetwork(non_local_scales=[]).modules() and not any(
        isinstance(m, NonLocalBlock) for m in SkipNetwork(non_local_scales=[]).modules()
    )
    parameters = sum(p.numel() for p in net.parameters())
    assert (
        parameters == 2_365_521
    )  # the reference skip net (5 scales, 128/128/16, 3 non-local blocks), counted by hand
    assert net(torch.rand(1, 8, 41, 37)).shape == (1, 1, 41, 37)


def test_non_local_block_starts_as_identity_and_mixes_positions():
    block = NonLocalBlock(8)
    x = torch.rand(2, 8, 9, 7)
    torch.testing.assert_close(block(x), x)
    with torch.no_grad():
        block.out[1].weight.fill_(1.0)
    block.eval()
    changed = block(x)
    assert not torch.allclose(changed, x)
    # non-local: changing one far-away pixel changes the output everywhere
    y = x.clone()
    y[:, :, -2, -2] += 5.0  # (floor pooling drops the last odd row/column, as in the reference)
    assert not torch.allclose(block(y)[:, :, 0, 0], changed[:, :, 0, 0])


def test_kernel_mlp_layout():
    mlp = KernelMLP(15, code_size=200, hidden=1000)
    linear = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(200, 1000), (1000, 225)]
    assert any(isinstance(m, torch.nn.ReLU6) for m in mlp.modules())
