"""Data sources: each lists image names and loads one :class:`Sample` at a time.

Loading is lazy so that one bad file fails only its own image. Every source
supports ``images`` (a subset of names, in the given order) and ``crop`` (a
centre crop of the blurry image and of the matching ground truth, the CPU
protocol of docs/evaluation.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from weakdeblur.data.io import check_readable_image, read_image
from weakdeblur.data.kernels import camera_shake_kernel
from weakdeblur.data.sample import DataError, Sample
from weakdeblur.physics import blur_same

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def centre_crop(image: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """Central ``size`` crop at offset ``((H - h)//2, (W - w)//2)``; a no-op for ``None``."""
    if size is None:
        return image
    height, width = _pair(size)
    if height > image.shape[-2] or width > image.shape[-1]:
        raise DataError(
            f"crop {height}x{width} is larger than the image {image.shape[-2]}x{image.shape[-1]}"
        )
    top, left = (image.shape[-2] - height) // 2, (image.shape[-1] - width) // 2
    return image[..., top : top + height, left : left + width].contiguous()


class ImageSource:
    """Base class: a list of names, a subset selection and lazy loading."""

    def __init__(
        self,
        images: Sequence[str] | None = None,
        crop: int | Sequence[int] | None = None,
        grey: bool | None = True,
    ):
        # one name given without brackets (data.images=im1_kernel1_img) is a list of one
        self.selected = (
            [images] if isinstance(images, str) else (list(images) if images is not None else None)
        )
        self.crop = crop
        self.grey = True if grey is None else bool(grey)  # None: the runner decides (color key)

    # -- to implement -------------------------------------------------------
    def available(self) -> list[str]:
        """Every image name this source can load, sorted."""
        raise NotImplementedError

    def _load(self, name: str) -> Sample:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    def names(self) -> list[str]:
        """The selected names; unknown names raise :class:`DataError` listing what exists."""
        if self.selected is not None and not self.selected:
            raise DataError("data.images is empty: name at least one image (null: all of them)")
        available = self.available()
        if self.selected is None:
            return available
        missing = [name for name in self.selected if name not in available]
        if missing:
            shown = ", ".join(available[:40]) + (" ..." if len(available) > 40 else "")
            raise DataError(f"unknown image(s) {missing}; available: {shown or 'none'}")
        return list(self.selected)

    def load(self, name: str) -> Sample:
        sample = self._load(name)
        if self.crop is not None:
            sample = Sample(
                name=sample.name,
                blurry=centre_crop(sample.blurry, self.crop),
                kernel_size=sample.kernel_size,
                sharp=centre_crop(sample.sharp, self.crop) if sample.sharp is not None else None,
                kernel=sample.kernel,
            )
        return sample

    def __iter__(self) -> Iterator[Sample]:
        for name in self.names():
            yield self.load(name)

    def __len__(self) -> int:
        return len(self.names())


def _existing_folder(root: str | Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{what} not found: {root} (set data_root= or the WEAKDEBLUR_DATA environment variable "
            "to the folder that holds it, or data.root= to this folder itself)"
        )
    return root


class LevinDataset(ImageSource):
    """Levin et al. (2009) layout: ``imI_kernelJ_img.png``, ``gt/imI.png``, ``gt/kernelJ.png``.

    ``kernel_sizes[J-1]`` is the size of the kernel estimated for kernel J
    (SelfDeblur: 17, 15, 13, 27, 11, 19, 21, 21).
    """

    pattern = re.compile(r"^im(?P<image>\d+)_kernel(?P<kernel>\d+)_img$")

    def __init__(
        self,
        root: str | Path,
        kernel_sizes: Sequence[int],
        images: Sequence[str] | None = None,
        crop: int | None = None,
        grey: bool | None = True,
    ):
        super().__init__(images, crop, grey)
        self.root = Path(root).expanduser()
        self.kernel_sizes = list(kernel_sizes)

    def available(self) -> list[str]:
        root = _existing_folder(self.root, "Levin data folder")
        names = [path.stem for path in root.glob("*.png") if self.pattern.match(path.stem)]
        if not names:
            hint = (
                " (it holds levin/: use data_root=" + str(root) + ")"
                if (root / "levin").is_dir()
                else ""
            )
            raise DataError(
                f"no Levin images (imI_kernelJ_img.png) in {root}{hint}; data.root is the levin/ "
                "folder itself (docs/data.md)"
            )
        return sorted(
            names, key=lambda name: tuple(int(v) for v in self.pattern.match(name).groups())
        )

    def _load(self, name: str) -> Sample:
        match = self.pattern.match(name)
        if match is None:
            raise DataError(f"{name} is not a Levin name (imI_kernelJ_img)")
        image_index, kernel_index = int(match["image"]), int(match["kernel"])
        if not 1 <= kernel_index <= len(self.kernel_sizes):
            raise DataError(f"{name}: no kernel size configured for kernel {kernel_index}")
        blurry = read_image(self.root / f"{name}.png", grey=self.grey)
        sharp_path = self.root / "gt" / f"im{image_index}.png"
        kernel_path = self.root / "gt" / f"kernel{kernel_index}.png"
        sharp = read_image(sharp_path, grey=self.grey) if sharp_path.is_file() else None
        kernel = None
        if kernel_path.is_file():
            kernel = read_image(kernel_path, grey=True)
            kernel = kernel / kernel.sum()
        return Sample(name, blurry, _pair(self.kernel_sizes[kernel_index - 1]), sharp, kernel)


class FolderDataset(ImageSource):
    """A folder of blurry images, optionally with same-named sharp images in ``sharp_dir``.

    The kernel size of an image is ``kernel_sizes[name]`` (exact file stem) if
    given, else that of the first ``kernel_size_patterns`` regular expression
    found in the name (e.g. ``{kernel_01: 31}`` for Lai et al.), else
    ``kernel_size``.
    """

    def __init__(
        self,
        root: str | Path,
        kernel_size: int | Sequence[int] = 31,
        kernel_sizes: Mapping[str, int] | None = None,
        kernel_size_patterns: Mapping[str, int] | None = None,
        sharp_dir: str | Path | None = None,
        images: Sequence[str] | None = None,
        crop: int | None = None,
        grey: bool | None = True,
    ):
        super().__init__(images, crop, grey)
        self.root = Path(root).expanduser()
        self.kernel_size = kernel_size
        self.kernel_sizes = dict(kernel_sizes or {})
        self.kernel_size_patterns = {
            re.compile(pattern): size for pattern, size in (kernel_size_patterns or {}).items()
        }
        self.sharp_dir = Path(sharp_dir).expanduser() if sharp_dir else None

    def _paths(self) -> dict[str, Path]:
        root = _existing_folder(self.root, "image folder")
        return {
            p.stem: p
            for p in sorted(root.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        }

    def available(self) -> list[str]:
        names = sorted(self._paths())
        if not names:
            raise DataError(
                f"no images in {self.root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return names

    def _size_for(self, name: str) -> tuple[int, int]:
        if name in self.kernel_sizes:
            return _pair(self.kernel_sizes[name])
        for pattern, size in self.kernel_size_patterns.items():
            if pattern.search(name):
                return _pair(size)
        return _pair(self.kernel_size)

    def _load(self, name: str) -> Sample:
        path = self._paths()[name]
        blurry = read_image(path, grey=self.grey)
        sharp = None
        if self.sharp_dir is not None:
            candidates = [
                self.sharp_dir / f"{name}{suffix}" for suffix in (path.suffix, *IMAGE_SUFFIXES)
            ]
            found = next((c for c in candidates if c.is_file()), None)
            sharp = read_image(found, grey=self.grey) if found else None
        return Sample(name, blurry, self._size_for(name), sharp, None)


class ImageFile(FolderDataset):
    """A single blurry image file (``data=image data.path=...``)."""

    def __init__(
        self,
        path: str | Path,
        kernel_size: int | Sequence[int] = 31,
        crop: int | None = None,
        grey: bool | None = True,
    ):
        self.path = Path(path).expanduser()
        self._checked = False  # the file decodes (checked once, by the preflight's names())
        super().__init__(self.path.parent, kernel_size=kernel_size, crop=crop, grey=grey)

    def _paths(self) -> dict[str, Path]:
        if not self._checked:
            check_readable_image(self.path)
            self._checked = True
        return {self.path.stem: self.path}


class DemoDataset(ImageSource):
    """The embedded demo: a crop of a scikit-image photograph, blurred by a seeded
    synthetic camera-shake kernel, plus Gaussian noise. Needs no download.

    Args:
        image: a scikit-image ``data`` function name (``camera``, ``astronaut``, ...).
        size: side of the crop.
        offset: ``[top, left]`` of the crop (``None``: centred).
        true_kernel_size: side of the synthetic kernel.
        kernel_size: side of the kernel to estimate.
        noise: standard deviation of the additive Gaussian noise.
        seed: seeds the kernel and the noise.
    """

    def __init__(
        self,
        image: str = "camera",
        size: int = 128,
        offset: Sequence[int] | None = None,
        true_kernel_size: int = 13,
        kernel_size: int = 15,
        noise: float = 0.01,
        seed: int = 0,
        images: Sequence[str] | None = None,
        crop: int | None = None,
        grey: bool | None = True,
    ):
        super().__init__(images, crop, grey)
        self.image, self.size, self.true_kernel_size = image, size, true_kernel_size
        self.offset = tuple(offset) if offset is not None else None
        self.kernel_size, self.noise, self.seed = kernel_size, noise, seed

    @property
    def name(self) -> str:
        return f"{self.image}{self.size}_k{self.true_kernel_size}_s{self.seed}"

    def available(self) -> list[str]:
        return [self.name]

    def _load(self, name: str) -> Sample:
        import kornia
        import skimage.data

        loader = getattr(skimage.data, self.image, None)
        if loader is None:
            raise DataError(f"scikit-image has no demo image {self.image!r}")
        array = np.asarray(loader())
        sharp = torch.from_numpy(array.astype(np.float32) / 255.0)
        sharp = sharp[None, None] if sharp.ndim == 2 else sharp.permute(2, 0, 1)[None, :3]
        if self.grey and sharp.shape[1] == 3:
            sharp = kornia.color.rgb_to_grayscale(sharp)
        if self.offset is None:
            sharp = centre_crop(sharp, self.size)
        else:
            top, left = self.offset
            if (
                top < 0
                or left < 0
                or top + self.size > sharp.shape[-2]
                or left + self.size > sharp.shape[-1]
            ):
                raise DataError(
                    f"demo crop {self.size} at {self.offset} leaves the {self.image} image"
                )
            sharp = sharp[..., top : top + self.size, left : left + self.size].contiguous()
        kernel = torch.from_numpy(camera_shake_kernel(self.true_kernel_size, seed=self.seed))[
            None, None
        ]
        generator = torch.Generator().manual_seed(self.seed)
        blurry = blur_same(sharp, kernel) + self.noise * torch.randn(
            sharp.shape, generator=generator
        )
        return Sample(name, blurry.clamp(0, 1), _pair(self.kernel_size), sharp, kernel)


class ShakeDataset(ImageSource):
    """Camera-shake blur of scikit-image photographs: a benchmark that is not Levin.

    Image ``i`` is the central ``size``-square of photograph ``photos[i]`` (grey),
    blurred by :func:`~weakdeblur.data.kernels.camera_shake_kernel` of side
    ``kernel_sizes[i % len]`` and seed ``seed + i`` with a *valid* convolution
    (the blurry image sees the scene beyond its borders, as a camera does),
    plus Gaussian noise ``noise`` and 8-bit quantisation. The kernel to estimate
    is the true kernel's side (its trajectory keeps a one-pixel margin).
    Names: ``<photo>_k<size>_s<seed>``.
    """

    def __init__(
        self,
        photos: Sequence[str] = (
            "camera",
            "astronaut",
            "coffee",
            "chelsea",
            "rocket",
            "grass",
            "gravel",
            "brick",
        ),
        kernel_sizes: Sequence[int] = (13, 17, 19, 21, 23, 27, 15, 25),
        size: int = 255,
        noise: float = 0.01,
        seed: int = 0,
        images: Sequence[str] | None = None,
        crop: int | None = None,
        grey: bool | None = True,
    ):
        super().__init__(images, crop, grey)
        if not photos or not kernel_sizes:
            raise DataError("data=shake needs at least one photo and one kernel size")
        self.photos, self.kernel_sizes = list(photos), [int(k) for k in kernel_sizes]
        self.size, self.noise, self.seed = size, noise, seed
        self._by_name = {
            f"{photo}_k{self.kernel_sizes[i % len(self.kernel_sizes)]}_s{seed + i}": (photo, i)
            for i, photo in enumerate(self.photos)
        }

    def available(self) -> list[str]:
        return list(self._by_name)

    def _load(self, name: str) -> Sample:
        import kornia
        import skimage.data

        photo, index = self._by_name[name]
        loader = getattr(skimage.data, photo, None)
        if loader is None:
            raise DataError(f"scikit-image has no photograph {photo!r}")
        array = np.asarray(loader())
        sharp = torch.from_numpy(
            array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
        )
        sharp = sharp[None, None] if sharp.ndim == 2 else sharp.permute(2, 0, 1)[None, :3]
        if self.grey and sharp.shape[1] == 3:
            sharp = kornia.color.rgb_to_grayscale(sharp)
        kernel_size = self.kernel_sizes[index % len(self.kernel_sizes)]
        margin = kernel_size // 2
        if min(sharp.shape[-2:]) < self.size + 2 * margin:
            raise DataError(f"{photo} is smaller than {self.size} + the kernel")
        scene = centre_crop(sharp, self.size + 2 * margin)
        kernel = torch.from_numpy(camera_shake_kernel(kernel_size, seed=self.seed + index)).float()
        channels = scene.shape[1]
        blurry = torch.nn.functional.conv2d(
            scene, kernel.expand(channels, 1, -1, -1).contiguous(), groups=channels
        )
        generator = torch.Generator().manual_seed(self.seed + index)
        blurry = blurry + self.noise * torch.randn(blurry.shape, generator=generator)
        blurry = torch.round(blurry.clamp(0, 1) * 255) / 255
        sharp = scene[..., margin:-margin, margin:-margin] if margin else scene
        return Sample(
            name, blurry, (kernel_size, kernel_size), sharp.contiguous(), kernel[None, None]
        )
