"""The spatially varying forward model, the kernel-grid generator and the smoothness term."""

import pytest
import torch
import torch.nn.functional as F

from weakdeblur.data.io import kernel_to_image
from weakdeblur.generators import KernelGridMLP
from weakdeblur.kernel_terms import KernelSmoothness, neighbour_differences
from weakdeblur.physics import GridBlur, UniformBlur, grid_windows
from weakdeblur.types import IterationState


def random_kernels(*shape: int) -> torch.Tensor:
    kernels = torch.rand(*shape, dtype=torch.float64)
    return kernels / kernels.sum((-2, -1), keepdim=True)


@pytest.mark.parametrize("grid", [(1, 1), (2, 3), (3, 3), (4, 1)])
def test_windows_are_smooth_non_negative_and_sum_to_one(grid):
    windows = grid_windows((37, 29), grid, dtype=torch.float64)
    assert windows.shape == (*grid, 37, 29)
    assert windows.min() >= 0
    torch.testing.assert_close(windows.sum((0, 1)), torch.ones(37, 29, dtype=torch.float64))
    if grid[0] > 1:  # each window peaks at 1 at its centre row and varies smoothly
        rows = windows[:, 0, :, 0]
        assert rows.max(dim=1).values.min() == pytest.approx(1.0, abs=0.01)
        assert (rows[:, 1:] - rows[:, :-1]).abs().max() < 2.0 / (37 / grid[0])


@pytest.mark.parametrize("grid", [(1, 1), (2, 3), (3, 3)])
def test_equal_kernels_give_the_uniform_model(grid):
    images = torch.rand(2, 3, 30, 26, dtype=torch.float64)
    kernel = random_kernels(2, 1, 7, 5)
    uniform = UniformBlur()(images, kernel)
    same = kernel[:, :, None].expand(2, *grid, 7, 5)
    torch.testing.assert_close(GridBlur(grid)(images, same), uniform, rtol=0, atol=1e-12)
    torch.testing.assert_close(GridBlur(grid)(images, kernel), uniform, rtol=0, atol=1e-12)
    assert uniform.shape == (2, 3, 24, 22)  # valid sizes: latent = observed + kernel - 1


def test_each_cell_kernel_rules_its_own_region():
    """Far from the window overlaps, the grid model is the uniform model with that cell's kernel."""
    blur = GridBlur((1, 2))
    images = torch.rand(1, 1, 20, 64, dtype=torch.float64)
    kernels = random_kernels(1, 1, 2, 5, 5)
    out = blur(images, kernels)
    left = UniformBlur()(images, kernels[:, 0, 0][:, None])
    right = UniformBlur()(images, kernels[:, 0, 1][:, None])
    # window 0 is 1 on latent columns [0, 16), window 1 on [48, 64): observed columns [0, 12) and [48, 60)
    torch.testing.assert_close(out[..., :12], left[..., :12])
    torch.testing.assert_close(out[..., 48:], right[..., 48:])
    assert (out[..., 30] - left[..., 30]).abs().max() > 1e-3  # the middle blends both


def test_adjoint_identity_and_linearity():
    blur = GridBlur((2, 3))
    kernels = random_kernels(2, 2, 3, 5, 4)
    latent = torch.rand(2, 2, 19, 17, dtype=torch.float64)
    other = torch.rand(2, 2, 19, 17, dtype=torch.float64)
    residual = torch.rand(2, 2, 15, 14, dtype=torch.float64)
    left = (blur(latent, kernels) * residual).sum()
    right = (latent * blur.adjoint(residual, kernels)).sum()
    torch.testing.assert_close(left, right)
    assert blur.adjoint(residual, kernels).shape == latent.shape
    torch.testing.assert_close(
        blur(2 * latent - 3 * other, kernels),
        2 * blur(latent, kernels) - 3 * blur(other, kernels),
    )
    # linear in the kernels too (for a fixed image)
    torch.testing.assert_close(
        blur(latent, 0.3 * kernels + 0.7 * kernels.flip(-1)),
        0.3 * blur(latent, kernels) + 0.7 * blur(latent, kernels.flip(-1)),
    )


def test_gradients_reach_every_cell_kernel_and_the_image():
    blur = GridBlur((3, 3))
    kernels = random_kernels(1, 3, 3, 5, 5).requires_grad_(True)
    latent = torch.rand(1, 1, 40, 40, dtype=torch.float64, requires_grad=True)
    blur(latent, kernels).pow(2).sum().backward()
    per_cell = kernels.grad.abs().sum((-2, -1))[0]
    assert per_cell.shape == (3, 3) and bool((per_cell > 1e-6).all())
    assert bool((latent.grad.abs() > 0).float().mean() > 0.99)


def test_mismatched_grid_is_a_clear_error():
    with pytest.raises(ValueError, match="physics.grid"):
        GridBlur((3, 3))(torch.rand(1, 1, 20, 20), torch.rand(1, 2, 2, 5, 5))


@pytest.mark.parametrize("shared", [True, False])
def test_grid_generator_emits_normalised_kernels_that_train_per_cell(shared):
    net = KernelGridMLP(kernel_size=(5, 7), code_size=16, hidden=32, grid=(2, 3), shared=shared)
    assert net.kernel_size == (5, 7)
    code = torch.rand(16)
    kernels = net(code)
    assert kernels.shape == (1, 2, 3, 5, 7)
    assert kernels.min() >= 0
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(1, 2, 3))
    assert (kernels[0, 0, 0] - kernels[0, 1, 2]).abs().max() > 0  # cells differ
    # end to end through the physics: every cell's kernel receives gradient
    latent = torch.rand(1, 1, 30, 36)
    GridBlur((2, 3))(latent, kernels).square().mean().backward()
    last = net.net[-1].weight if shared else net.cells[5].net[-1].weight
    assert last.grad is not None and last.grad.abs().sum() > 0
    if shared:  # rows of the last layer that produce cell (1, 2)'s logits
        rows = last.grad.reshape(6, 35, -1)
        assert bool((rows.abs().sum((1, 2)) > 0).all())


def test_smoothness_is_zero_for_equal_kernels_and_grows_with_differences():
    same = random_kernels(1, 1, 1, 5, 5).expand(1, 3, 3, 5, 5)
    assert neighbour_differences(same).item() == 0.0
    kernels = same.clone()
    kernels[0, 1, 1] = random_kernels(5, 5)
    # the centre differs from its 4 neighbours: 4 of the 12 adjacent pairs
    expected = 4 * (kernels[0, 1, 1] - same[0, 0, 0]).pow(2).sum() / 12
    torch.testing.assert_close(neighbour_differences(kernels), expected)
    term = KernelSmoothness(weight=0.5)

    def state(kernel):
        x = torch.zeros(1, 1, 4, 4)
        return IterationState(0, 1, None, x, x, x, kernel, x)

    torch.testing.assert_close(term(state(kernels)), 0.5 * expected)
    assert term(state(torch.rand(1, 1, 5, 5))) is None  # uniform kernel: no neighbours
    # descending the penalty pulls the kernels together
    logits = torch.randn(1, 2, 2, 9, requires_grad=True)
    optimiser = torch.optim.SGD([logits], lr=50.0)
    values = []
    for _ in range(30):
        value = term(state(torch.softmax(logits, -1).reshape(1, 2, 2, 3, 3)))
        values.append(value.item())
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    assert values[-1] < 0.2 * values[0]


def test_kernel_grid_mosaic():
    kernels = torch.zeros(1, 2, 3, 5, 4)
    kernels[0, 1, 2, 2, 1] = 2.0
    kernels[0, 0, 0, 0, 0] = 1.0
    mosaic = kernel_to_image(kernels)
    assert mosaic.shape == (1, 1, 2 * 5 + 1, 3 * 4 + 2)
    assert mosaic[0, 0, 5 + 1 + 2, 2 * 5 + 1] == 1.0  # cell (1, 2), pixel (2, 1), scaled to max
    assert mosaic[0, 0, 0, 0] == 0.5 and mosaic[0, 0, 5, 0] == 0.5  # the separator row
    assert kernel_to_image(torch.ones(1, 1, 3, 3)).shape == (1, 1, 3, 3)
    assert F.relu(mosaic).max() == 1.0


def test_residual_grid_generator_starts_as_one_kernel_and_learns_offsets():
    net = KernelGridMLP(kernel_size=5, code_size=16, hidden=32, grid=(2, 2), residual=True)
    code = torch.rand(16)
    kernels = net(code)
    assert kernels.shape == (1, 2, 2, 5, 5)
    torch.testing.assert_close(kernels, kernels[:, :1, :1].expand_as(kernels))  # the uniform model
    latent = torch.rand(1, 1, 24, 24)
    target = GridBlur((2, 2))(latent, torch.rand(1, 2, 2, 5, 5).softmax(-1))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(20):
        optimiser.zero_grad()
        (GridBlur((2, 2))(latent, net(code)) - target).square().mean().backward()
        optimiser.step()
    assert net.offsets.weight.abs().sum() > 0
    kernels = net(code)
    assert (kernels[0, 0, 0] - kernels[0, 1, 1]).abs().max() > 1e-4  # the cells have parted
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="shared"):
        KernelGridMLP(kernel_size=5, grid=2, shared=False, residual=True)
