"""The synthetic non-uniform benchmark, the GoPro-layout loader and grid kernel metrics."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from weakdeblur.data import GoProDataset, NonUniformDataset
from weakdeblur.data.sample import DataError
from weakdeblur.metrics import grid_kernel_errors, psnr
from weakdeblur.physics import GridBlur, UniformBlur


def small_set(**options):
    defaults = dict(scenes=["camera"], size=40, resize=80, true_kernel_size=7, kernel_size=7)
    return NonUniformDataset(**{**defaults, **options})


@pytest.mark.parametrize("blur", ["camera", "regions"])
def test_synthetic_set_is_seeded_with_per_cell_ground_truth(blur):
    data = small_set(blur=blur, noise=0.0)
    (name,) = data.names()
    assert name == f"camera40_{blur}_s0"
    sample, again = data.load(name), data.load(name)
    torch.testing.assert_close(sample.blurry, again.blurry)
    assert sample.blurry.shape == sample.sharp.shape == (1, 1, 40, 40)
    assert sample.kernel.shape == (1, 3, 3, 7, 7)
    torch.testing.assert_close(sample.kernel.sum((-2, -1)), torch.ones(1, 3, 3))
    other = small_set(blur=blur, seed=1).load("camera40_" + blur + "_s1")
    assert (other.kernel - sample.kernel).abs().max() > 1e-3


def test_camera_blur_is_spatially_varying_and_explained_by_the_grid_model():
    """The per-cell ground truth through GridBlur reproduces the camera blur far better
    than any single cell's kernel does (so the blur really varies over the image)."""
    data = small_set(size=64, resize=128, true_kernel_size=9, kernel_size=9, noise=0.0)
    sample = data.load(data.names()[0])
    kernels = sample.kernel
    assert (kernels[0, 0, 0] - kernels[0, 2, 2]).abs().sum() > 0.5  # corners differ
    padded = F.pad(sample.sharp, (4, 4, 4, 4), mode="reflect")
    inner = (..., slice(8, -8), slice(8, -8))
    grid = psnr(GridBlur((3, 3))(padded, kernels)[inner], sample.blurry[inner])
    uniform = max(
        psnr(UniformBlur()(padded, kernels[:, p, q][:, None])[inner], sample.blurry[inner])
        for p in range(3)
        for q in range(3)
    )
    assert grid > 38 and grid > uniform + 5


def test_colour_scenes_and_bad_options():
    sample = small_set(scenes=["astronaut"], grey=False).load("astronaut40_camera_s0")
    assert sample.blurry.shape == (1, 3, 40, 40)
    with pytest.raises(DataError, match="camera or regions"):
        small_set(blur="zoom")
    with pytest.raises(DataError, match="no demo image"):
        small_set(scenes=["nothing"]).load("nothing40_camera_s0")


def test_gopro_layout(tmp_path):
    rng = np.random.default_rng(0)
    for sequence, frames in (
        ("GOPR0001_11_00", ["000001", "000002"]),
        ("GOPR0002_11_01", ["000007"]),
    ):
        for folder in ("blur", "sharp"):
            (tmp_path / sequence / folder).mkdir(parents=True)
        for frame in frames:
            sharp = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
            iio.imwrite(tmp_path / sequence / "sharp" / f"{frame}.png", sharp)
            iio.imwrite(tmp_path / sequence / "blur" / f"{frame}.png", sharp // 2)
    (tmp_path / "GOPR0002_11_01" / "sharp" / "000007.png").unlink()  # a frame without ground truth
    data = GoProDataset(tmp_path, kernel_size=9, grey=False)
    assert data.names() == [
        "GOPR0001_11_00_000001",
        "GOPR0001_11_00_000002",
        "GOPR0002_11_01_000007",
    ]
    sample = data.load("GOPR0001_11_00_000002")
    assert sample.blurry.shape == sample.sharp.shape == (1, 3, 24, 32)
    assert sample.kernel_size == (9, 9)
    torch.testing.assert_close(
        sample.blurry, torch.floor(sample.sharp * 255 / 2) / 255, atol=1e-6, rtol=0
    )
    assert data.load("GOPR0002_11_01_000007").sharp is None
    grey = GoProDataset(tmp_path, kernel_size=9, crop=16, images=["GOPR0002_11_01_000007"])
    assert grey.load(grey.names()[0]).blurry.shape == (1, 1, 16, 16)
    with pytest.raises(DataError, match="GoPro data folder not found"):
        GoProDataset(tmp_path / "missing").names()


def test_grid_kernel_errors():
    kernels = torch.rand(1, 2, 2, 5, 5)
    kernels /= kernels.sum((-2, -1), keepdim=True)
    perfect = grid_kernel_errors(kernels, kernels)
    assert perfect["kernel_error"] == pytest.approx(0.0, abs=1e-6)
    assert len(perfect["kernel_error_cells"]) == 4
    swapped = grid_kernel_errors(kernels.flip(1), kernels)
    assert swapped["kernel_error"] > 0.05
    # a uniform estimate is scored against every cell (and vice versa)
    one = kernels[:, 0, 0][:, None]
    scores = grid_kernel_errors(one, kernels)
    assert scores["kernel_error_cells"][0] == pytest.approx(0.0, abs=1e-6)
    assert scores["kernel_error"] > 0
    assert grid_kernel_errors(kernels, one)["kernel_error_cells"][0] == pytest.approx(0.0, abs=1e-6)
    assert grid_kernel_errors(kernels, torch.rand(1, 3, 3, 5, 5)) == {}
    assert "kernel_error_cells" not in grid_kernel_errors(one, one)
