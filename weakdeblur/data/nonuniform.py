r"""Spatially varying blur: a seeded synthetic benchmark and a GoPro-layout loader.

:class:`NonUniformDataset` blurs crops of scikit-image photographs (nothing is
downloaded) in one of two ways, each with ground-truth per-cell kernels
``(1, P, Q, h, w)`` on the grid of :class:`weakdeblur.physics.GridBlur`:

* ``blur="camera"``: in-plane camera rotation plus translation during the
  exposure. A pose :math:`(\theta_t, \tau_t)`, :math:`t = 1..T`, moves pixel
  :math:`p` by :math:`d_t(p) = R(\theta_t)(p - c) - (p - c) + \tau_t` (:math:`c`
  the image centre), and

  .. math::

      y(p) = \frac1T \sum_{t=1}^{T} x\big(p + d_t(p)\big) + n(p),

  sampled bilinearly with reflected borders. The blur is different at every
  pixel (rotation smears the corners, not the centre); the ground-truth kernel
  of a cell is the local point-spread function at the cell's window centre,
  :math:`k(u) = \frac1T\sum_t \delta(u - d_t(p_{\text{cell}}))` in the
  correlation convention of :mod:`weakdeblur.physics` (splatted bilinearly).
  ``rotation`` sets the share of the displacement budget due to rotation.
* ``blur="regions"``: an independent seeded camera-shake trajectory per cell,
  blended by the grid windows (exactly the :class:`GridBlur` model on the
  reflect-padded image).

The largest displacement is scaled to fit ``true_kernel_size``.

:class:`GoProDataset` reads real blurry/sharp pairs in the GoPro layout
(``<root>/<sequence>/blur/*.png`` and ``<root>/<sequence>/sharp/*.png``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from weakdeblur.data.datasets import (
    IMAGE_SUFFIXES,
    ImageSource,
    _existing_folder,
    _pair,
    centre_crop,
)
from weakdeblur.data.io import read_image
from weakdeblur.data.kernels import camera_shake_kernel, splat
from weakdeblur.data.sample import DataError, Sample
from weakdeblur.physics import GridBlur


def scikit_image(name: str, grey: bool, resize: int | None = None) -> torch.Tensor:
    """A scikit-image ``data`` photograph as ``(1, C, H, W)`` in [0, 1], short side ``resize``."""
    import kornia
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise DataError(f"scikit-image has no demo image {name!r}")
    array = np.asarray(loader())
    image = torch.from_numpy(array.astype(np.float32) / 255.0)
    image = image[None, None] if image.ndim == 2 else image.permute(2, 0, 1)[None, :3]
    if grey and image.shape[1] == 3:
        image = kornia.color.rgb_to_grayscale(image)
    if resize is not None:
        scale = resize / min(image.shape[-2:])
        size = (round(image.shape[-2] * scale), round(image.shape[-1] * scale))
        image = kornia.geometry.transform.resize(image, size, antialias=True).clamp(0, 1)
    return image.contiguous()


def cell_centres(size: int, cells: int, kernel_size: int) -> np.ndarray:
    """Observed-image coordinates of the grid windows' centres (latent = size + k - 1)."""
    latent = size + kernel_size - 1
    return (np.arange(cells) + 0.5) * latent / cells - 0.5 - (kernel_size - 1) / 2


class CameraMotion:
    """A seeded in-plane camera trajectory: angles ``(T,)`` and translations ``(T, 2)``."""

    def __init__(self, rng: np.random.Generator, steps: int = 48):
        t = np.linspace(0.0, 1.0, steps)
        a, b = rng.normal(size=2), rng.normal(size=2)
        translation = t[:, None] * a + t[:, None] ** 2 * b
        angle = rng.choice([-1.0, 1.0]) * (t + rng.uniform(-0.5, 0.5) * t**2)
        self.translation = translation - translation.mean(0)
        self.angle = angle - angle.mean()

    def displacement(
        self, points: np.ndarray, centre: np.ndarray, angle_scale: float, shift_scale: float
    ) -> np.ndarray:
        """``(T, N, 2)`` displacements of ``(N, 2)`` (row, col) points."""
        angle = self.angle[:, None] * angle_scale
        rel = points[None] - centre
        cos, sin = np.cos(angle), np.sin(angle)
        rotated = np.stack(
            [cos * rel[..., 0] + sin * rel[..., 1], -sin * rel[..., 0] + cos * rel[..., 1]], -1
        )
        return rotated - rel + shift_scale * self.translation[:, None]


class NonUniformDataset(ImageSource):
    """Seeded synthetic spatially varying blur on scikit-image crops, with per-cell ground truth.

    Args:
        scenes: scikit-image ``data`` names; scene ``i`` uses seed ``seed + i``.
        size: side of the (square, centred) crop.
        resize: short side the photograph is resized to before cropping (``None``: as is).
        blur: ``camera`` (rotation + translation) or ``regions`` (a trajectory per cell).
        grid: ``(P, Q)`` of the ground-truth kernels (and of the ``regions`` blur).
        true_kernel_size: support of the blur (largest displacement fits inside).
        kernel_size: the kernel size to estimate (also fixes where the cells' centres are).
        rotation: share of the displacement due to rotation (``camera`` only).
        noise: standard deviation of the additive Gaussian noise.
        seed: base seed.
    """

    def __init__(
        self,
        scenes: Sequence[str] = ("camera", "astronaut", "coffee"),
        size: int = 96,
        resize: int | None = 160,
        blur: str = "camera",
        grid: Sequence[int] | int = (3, 3),
        true_kernel_size: int = 11,
        kernel_size: int = 13,
        rotation: float = 0.6,
        noise: float = 0.01,
        seed: int = 0,
        steps: int = 48,
        images: Sequence[str] | None = None,
        grey: bool | None = True,
    ):
        super().__init__(images, None, grey)
        if blur not in ("camera", "regions"):
            raise DataError(f"data.blur must be camera or regions, got {blur!r}")
        if not 0.0 <= rotation <= 1.0:
            raise DataError(f"data.rotation must be in [0, 1], got {rotation}")
        self.scenes = list(scenes)
        self.size, self.resize, self.blur = int(size), resize, blur
        self.grid = _pair(grid)
        self.true_kernel_size, self.kernel_size = int(true_kernel_size), int(kernel_size)
        self.rotation, self.noise, self.seed, self.steps = rotation, noise, seed, steps

    def _names(self) -> dict[str, tuple[str, int]]:
        return {
            f"{scene}{self.size}_{self.blur}_s{self.seed + index}": (scene, self.seed + index)
            for index, scene in enumerate(self.scenes)
        }

    def available(self) -> list[str]:
        return list(self._names())

    def _load(self, name: str) -> Sample:
        scene, seed = self._names()[name]
        sharp = centre_crop(scikit_image(scene, self.grey, self.resize), self.size)
        rng = np.random.default_rng(seed)
        if self.blur == "camera":
            blurry, kernels = self._camera(sharp, rng)
        else:
            blurry, kernels = self._regions(sharp, rng)
        generator = torch.Generator().manual_seed(seed)
        blurry = blurry + self.noise * torch.randn(blurry.shape, generator=generator)
        return Sample(name, blurry.clamp(0, 1), _pair(self.kernel_size), sharp, kernels)

    def _camera(
        self, sharp: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        size, limit = self.size, (self.true_kernel_size - 3) / 2
        motion = CameraMotion(rng, self.steps)
        centre = np.array([(size - 1) / 2, (size - 1) / 2])
        corners = np.array([[0, 0], [0, size - 1], [size - 1, 0], [size - 1, size - 1]], float)
        # share the displacement budget: rotation moves the corners, translation every pixel
        rot_extent = np.abs(motion.displacement(corners, centre, 1.0, 0.0)).max()
        shift_extent = np.abs(motion.translation).max()
        angle_scale = self.rotation * limit / max(rot_extent, 1e-9)
        shift_scale = (1 - self.rotation) * limit / max(shift_extent, 1e-9)
        extent = np.abs(motion.displacement(corners, centre, angle_scale, shift_scale)).max()
        if extent > limit:  # both parts pulling the same way at a corner
            angle_scale, shift_scale = angle_scale * limit / extent, shift_scale * limit / extent
        rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        pixels = np.stack([rows.ravel(), cols.ravel()], -1).astype(float)
        moved = pixels[None] + motion.displacement(pixels, centre, angle_scale, shift_scale)
        # grid_sample coordinates (align_corners=False): (2 p + 1) / size - 1, (x=col, y=row)
        coords = torch.from_numpy((2 * moved[..., ::-1] + 1) / size - 1).float()
        coords = coords.reshape(len(moved), size, size, 2)
        images = sharp.expand(len(moved), -1, -1, -1)
        blurry = F.grid_sample(
            images, coords, mode="bilinear", padding_mode="reflection", align_corners=False
        ).mean(0, keepdim=True)
        rows_c = cell_centres(size, self.grid[0], self.kernel_size)
        cols_c = cell_centres(size, self.grid[1], self.kernel_size)
        points = np.array([[r, c] for r in rows_c for c in cols_c])
        shifts = motion.displacement(points, centre, angle_scale, shift_scale)  # (T, n, 2)
        kernels = np.stack([splat(shifts[:, i], self.true_kernel_size) for i in range(len(points))])
        kernels = torch.from_numpy(kernels).reshape(1, *self.grid, *kernels.shape[-2:])
        return blurry, kernels

    def _regions(
        self, sharp: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.true_kernel_size
        cells = [camera_shake_kernel(k, rng) for _ in range(self.grid[0] * self.grid[1])]
        kernels = torch.from_numpy(np.stack(cells)).reshape(1, *self.grid, k, k)
        top, left = (k - 1) // 2, (k - 1) // 2
        padded = F.pad(sharp, (left, k - 1 - left, top, k - 1 - top), mode="reflect")
        return GridBlur(self.grid)(padded, kernels), kernels


class GoProDataset(ImageSource):
    """Real blurry/sharp pairs in the GoPro layout (Nah et al., CVPR 2017).

    ``<root>/<sequence>/<blur_dir>/<frame>.png`` with the sharp frame of the same
    name in ``<root>/<sequence>/<sharp_dir>/``. Image names are
    ``<sequence>_<frame>``. GoPro frames are 1280×720 and their blur is spatially
    varying; use ``crop`` for CPU-sized work.
    """

    def __init__(
        self,
        root: str | Path,
        kernel_size: int | Sequence[int] = 31,
        blur_dir: str = "blur",
        sharp_dir: str = "sharp",
        images: Sequence[str] | None = None,
        crop: int | Sequence[int] | None = None,
        grey: bool | None = True,
    ):
        super().__init__(images, crop, grey)
        self.root = Path(root).expanduser()
        self.kernel_size = kernel_size
        self.blur_dir, self.sharp_dir = blur_dir, sharp_dir

    def _paths(self) -> dict[str, Path]:
        root = _existing_folder(self.root, "GoPro data folder")
        paths = {}
        for sequence in sorted(p for p in root.iterdir() if p.is_dir()):
            folder = sequence / self.blur_dir
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    paths[f"{sequence.name}_{path.stem}"] = path
        return paths

    def available(self) -> list[str]:
        return sorted(self._paths())

    def _load(self, name: str) -> Sample:
        path = self._paths()[name]
        blurry = read_image(path, grey=self.grey)
        sharp_path = path.parent.parent / self.sharp_dir / path.name
        sharp = read_image(sharp_path, grey=self.grey) if sharp_path.is_file() else None
        return Sample(name, blurry, _pair(self.kernel_size), sharp, None)


__all__ = ["CameraMotion", "GoProDataset", "NonUniformDataset", "cell_centres"]
