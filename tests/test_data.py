import imageio.v3 as iio
import numpy as np
import pytest
import torch

from weakdeblur.data import (
    DataError,
    DemoDataset,
    FolderDataset,
    ImageFile,
    LevinDataset,
    camera_shake_kernel,
    centre_crop,
)
from weakdeblur.data.io import read_image

LEVIN_SIZES = [17, 15, 13, 27, 11, 19, 21, 21]


def test_levin_loader_reads_ground_truth_and_kernel_sizes(levin_root):
    source = LevinDataset(levin_root, LEVIN_SIZES)
    names = source.names()
    assert len(names) == 32 and names[0] == "im1_kernel1_img" and names[-1] == "im4_kernel8_img"
    sample = source.load("im2_kernel4_img")
    assert sample.kernel_size == (27, 27)
    assert sample.blurry.shape == sample.sharp.shape == (1, 1, 255, 255)
    assert sample.kernel.shape == (1, 1, 27, 27)
    torch.testing.assert_close(sample.kernel.sum(), torch.tensor(1.0))


def test_levin_subset_and_crop(levin_root):
    source = LevinDataset(
        levin_root, LEVIN_SIZES, images=["im3_kernel5_img", "im1_kernel2_img"], crop=128
    )
    assert source.names() == ["im3_kernel5_img", "im1_kernel2_img"]
    full = LevinDataset(levin_root, LEVIN_SIZES).load("im3_kernel5_img")
    sample = source.load("im3_kernel5_img")
    assert sample.blurry.shape[-2:] == (128, 128)
    torch.testing.assert_close(sample.blurry, full.blurry[..., 63:191, 63:191])
    torch.testing.assert_close(sample.sharp, full.sharp[..., 63:191, 63:191])


def test_unknown_image_lists_available(levin_root):
    with pytest.raises(DataError, match="available: im1_kernel1_img"):
        LevinDataset(levin_root, LEVIN_SIZES, images=["nope"]).names()


def test_missing_root_names_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "absent")):
        LevinDataset(tmp_path / "absent", LEVIN_SIZES).names()


def test_folder_dataset_kernel_sizes_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    iio.imwrite(tmp_path / "a_kernel_02.png", (rng.random((40, 40)) * 255).astype(np.uint8))
    iio.imwrite(tmp_path / "b.png", (rng.random((40, 40, 3)) * 255).astype(np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    source = FolderDataset(
        tmp_path, kernel_size=9, kernel_sizes={"b": 11}, kernel_size_patterns={"kernel_02": 13}
    )
    assert source.names() == ["a_kernel_02", "b", "broken"]
    assert source.load("a_kernel_02").kernel_size == (13, 13)
    colour = source.load("b")
    assert colour.kernel_size == (11, 11) and colour.blurry.shape == (1, 1, 40, 40)
    with pytest.raises(DataError, match="not a readable image"):
        source.load("broken")
    with pytest.raises(DataError, match="not smaller than the image"):
        FolderDataset(tmp_path, kernel_size=41).load("a_kernel_02")


def test_image_file(tmp_path):
    path = tmp_path / "photo.png"
    iio.imwrite(path, np.full((30, 20), 128, np.uint8))
    sample = ImageFile(path, kernel_size=5).load("photo")
    assert sample.blurry.shape == (1, 1, 30, 20)
    assert sample.blurry.max().item() == pytest.approx(128 / 255)
    with pytest.raises(DataError, match="image not found"):
        ImageFile(tmp_path / "missing.png").names()


def test_wrong_shaped_image(tmp_path):
    path = tmp_path / "volume.tif"
    iio.imwrite(path, np.zeros((4, 10, 10, 5), np.uint8))
    with pytest.raises(DataError):
        read_image(path)


def test_demo_is_seeded_and_blurred():
    first = DemoDataset(size=48, true_kernel_size=9, kernel_size=11, seed=3)
    sample = first.load(first.names()[0])
    again = DemoDataset(size=48, true_kernel_size=9, kernel_size=11, seed=3).load(first.names()[0])
    torch.testing.assert_close(sample.blurry, again.blurry)
    assert sample.kernel_size == (11, 11) and sample.sharp.shape == sample.blurry.shape
    assert (sample.blurry - sample.sharp).abs().mean() > 0.005
    other = DemoDataset(size=48, true_kernel_size=9, kernel_size=11, seed=4)
    assert not torch.allclose(other.load(other.names()[0]).blurry, sample.blurry)


@pytest.mark.parametrize("size", [9, 15, 31])
def test_camera_shake_kernels_are_normalised_and_seeded(size):
    kernel = camera_shake_kernel(size, seed=7)
    assert kernel.shape == (size, size)
    assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(kernel, camera_shake_kernel(size, seed=7))
    assert (kernel > 0).sum() > 3  # a trajectory, not a single point


def test_centre_crop_offset():
    image = torch.arange(255 * 255, dtype=torch.float32).reshape(1, 1, 255, 255)
    assert centre_crop(image, 128)[0, 0, 0, 0] == image[0, 0, 63, 63]
    with pytest.raises(DataError):
        centre_crop(image, 300)


def test_one_name_without_brackets_and_an_empty_selection(tmp_path):
    from weakdeblur.data import DemoDataset

    name = DemoDataset(size=40, true_kernel_size=5, kernel_size=7).names()[0]
    assert DemoDataset(size=40, true_kernel_size=5, kernel_size=7, images=name).names() == [name]
    with pytest.raises(DataError, match="data.images is empty"):
        DemoDataset(size=40, true_kernel_size=5, kernel_size=7, images=[]).names()


def test_a_levin_root_one_level_too_high_and_an_empty_folder_say_where(tmp_path):
    from weakdeblur.data import FolderDataset, LevinDataset

    (tmp_path / "levin").mkdir()
    with pytest.raises(DataError, match=f"no Levin images .* in {tmp_path} .*use data_root="):
        LevinDataset(tmp_path, [17] * 8).names()
    with pytest.raises(DataError, match=f"no images in {tmp_path / 'levin'}"):
        FolderDataset(tmp_path / "levin").names()
