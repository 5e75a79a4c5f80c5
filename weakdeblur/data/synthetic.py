r"""Training data for the synthetic supervisor: sharp images and their blurred versions.

Sharp images come from two places, neither of which is the Levin benchmark:

* **procedural** textured dead leaves: opaque disks and rectangles with
  power-law radii (:math:`p(r) \propto r^{-3}`), each filled with a random
  grey level plus a random texture (gradient, sinusoidal grating or
  smoothed noise), painted back to front; this reproduces the edge and
  scale statistics of natural images (Lee, Mumford & Huang, 2001);
* **natural** photographs shipped by scikit-image (``skimage/data``) and
  matplotlib (``grace_hopper.jpg``), converted to grey, at full and half
  resolution.

A training pair is :math:`y = \mathrm{q}_8\big(k \star x + n\big)` with a random
camera-shake kernel :math:`k` (:func:`~weakdeblur.data.kernels.camera_shake_kernel`,
odd sizes 9–31 px, randomly flipped/rotated), ``valid`` convolution (no border
effects), :math:`n \sim \mathcal N(0, \sigma^2)` with
:math:`\sigma \sim \mathcal U[\sigma_{\min}, \sigma_{\max}]` (about 1%) and
8-bit quantisation :math:`\mathrm{q}_8`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from weakdeblur.data.io import read_image
from weakdeblur.data.kernels import camera_shake_kernel

# photographs shipped by scikit-image (clock_motion is already blurred; the rest are too
# small, binary or not photographs)
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
    "cell.png",
    "color.png",
)


def natural_images(min_size: int = 160) -> list[np.ndarray]:
    """Grey float32 photographs from scikit-image and matplotlib, full and half size."""
    paths: list[Path] = []
    try:
        import skimage.data

        folder = Path(os.path.dirname(skimage.data.__file__))
        paths += [folder / name for name in SKIMAGE_PHOTOS if (folder / name).is_file()]
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        pass
    try:
        import matplotlib

        hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if hopper.is_file():
            paths.append(hopper)
    except ImportError:  # pragma: no cover
        pass
    images = []
    for path in paths:
        image = read_image(path, grey=True)[0, 0].numpy()
        for scale in (1.0, 0.5):
            scaled = image if scale == 1.0 else _downscale(image)
            if min(scaled.shape) >= min_size:
                images.append(np.ascontiguousarray(scaled, dtype=np.float32))
    return images


def _downscale(image: np.ndarray) -> np.ndarray:
    """Half size with a small anti-alias blur."""
    return ndimage.zoom(ndimage.gaussian_filter(image, 0.6), 0.5, order=1)


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(4)
    if kind == 0:  # flat
        return np.zeros(shape, np.float32)
    if kind == 1:  # linear gradient
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * cols + np.sin(angle) * rows
        return (ramp - ramp.mean()) / max(float(np.ptp(ramp)), 1.0) * rng.uniform(0.1, 0.5)
    if kind == 2:  # grating
        angle = rng.uniform(0, 2 * np.pi)
        period = rng.uniform(3, 20)
        phase = np.cos(angle) * cols + np.sin(angle) * rows
        return rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * phase / period)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), rng.uniform(0.5, 3.0))
    return (noise / max(noise.std(), 1e-6) * rng.uniform(0.02, 0.15)).astype(np.float32)


def dead_leaves(size: int, rng: np.random.Generator, r_min: float = 4.0) -> np.ndarray:
    """A ``size × size`` textured dead-leaves image in [0, 1] (float32)."""
    r_max = size / 3
    image = np.full((size, size), rng.uniform(0, 1), np.float32)
    covered = np.zeros((size, size), bool)
    rows, cols = np.mgrid[0:size, 0:size]
    # front-to-back painting: a leaf only fills pixels not yet covered
    for _ in range(4000):
        u = rng.uniform()
        radius = 1.0 / np.sqrt(1 / r_min**2 - u * (1 / r_min**2 - 1 / r_max**2))
        cy, cx = rng.uniform(-radius, size + radius, 2)
        y0, y1 = int(max(cy - radius, 0)), int(min(cy + radius + 1, size))
        x0, x1 = int(max(cx - radius, 0)), int(min(cx + radius + 1, size))
        if y0 >= y1 or x0 >= x1:
            continue
        rr, cc = rows[y0:y1, x0:x1], cols[y0:y1, x0:x1]
        if rng.uniform() < 0.75:
            mask = (rr - cy) ** 2 + (cc - cx) ** 2 <= radius**2
        else:  # rotated rectangle
            angle = rng.uniform(0, np.pi)
            aspect = rng.uniform(0.2, 1.0)
            du, dv = cc - cx, rr - cy
            a = np.cos(angle) * du + np.sin(angle) * dv
            b = -np.sin(angle) * du + np.cos(angle) * dv
            mask = (np.abs(a) <= radius) & (np.abs(b) <= radius * aspect)
        mask &= ~covered[y0:y1, x0:x1]
        if not mask.any():
            continue
        leaf = rng.uniform(0, 1) + _texture(rng, mask.shape)
        image[y0:y1, x0:x1][mask] = leaf[mask]
        covered[y0:y1, x0:x1] |= mask
        if covered.all():
            break
    image = np.clip(image, 0, 1)
    if rng.uniform() < 0.5:  # slight optical softness, as in photographs
        image = ndimage.gaussian_filter(image, rng.uniform(0.3, 0.8))
    return image.astype(np.float32)


class BlurredPatches:
    """Draws batches of (blurry, sharp) grey patches.

    Args:
        patch: side of the returned patches.
        kernel_sizes: (smallest, largest) odd kernel side.
        noise: (σ_min, σ_max) of the Gaussian noise, on [0, 1] images.
        procedural_fraction: share of patches cut from dead-leaves images.
        procedural_pool: dead-leaves images kept in memory (one is replaced per batch).
        kernel_pool: kernels kept in memory (one is replaced per batch).
        natural: the photographs (default: :func:`natural_images`).
        seed: seeds everything drawn.
    """

    def __init__(
        self,
        patch: int = 128,
        kernel_sizes: tuple[int, int] = (9, 31),
        noise: tuple[float, float] = (0.005, 0.015),
        procedural_fraction: float = 0.4,
        procedural_pool: int = 64,
        procedural_size: int = 256,
        kernel_pool: int = 256,
        natural: list[np.ndarray] | None = None,
        seed: int | list[int] = 0,
    ):
        self.patch = patch
        self.kernel_sizes = (int(kernel_sizes[0]), int(kernel_sizes[1]))
        self.support = self.kernel_sizes[1] | 1  # odd common support
        self.noise = noise
        self.procedural_fraction = procedural_fraction
        self.procedural_size = max(procedural_size, patch + self.support)
        self.rng = np.random.default_rng(seed)
        self.natural = natural_images(patch + self.support) if natural is None else natural
        self.natural = [im for im in self.natural if min(im.shape) >= patch + self.support - 1]
        self.procedural = [
            dead_leaves(self.procedural_size, self.rng) for _ in range(procedural_pool)
        ]
        self.kernels = [self._new_kernel() for _ in range(kernel_pool)]

    def _new_kernel(self) -> np.ndarray:
        low, high = self.kernel_sizes
        size = int(self.rng.choice(np.arange(low | 1, high + 1, 2)))
        kernel = camera_shake_kernel(size, self.rng)
        pad = (self.support - size) // 2
        return np.pad(kernel, pad)

    def refresh(self) -> None:
        """Replaces one procedural image and one kernel (keeps the pools varied)."""
        if self.procedural:
            self.procedural[self.rng.integers(len(self.procedural))] = dead_leaves(
                self.procedural_size, self.rng
            )
        self.kernels[self.rng.integers(len(self.kernels))] = self._new_kernel()

    def _crop(self, side: int) -> np.ndarray:
        use_procedural = not self.natural or (
            self.procedural and self.rng.uniform() < self.procedural_fraction
        )
        pool = self.procedural if use_procedural else self.natural
        image = pool[self.rng.integers(len(pool))]
        top = self.rng.integers(image.shape[0] - side + 1)
        left = self.rng.integers(image.shape[1] - side + 1)
        crop = image[top : top + side, left : left + side]
        crop = np.rot90(crop, self.rng.integers(4))
        if self.rng.uniform() < 0.5:
            crop = crop[:, ::-1]
        # random contrast and brightness, kept in [0, 1]
        low, high = float(crop.min()), float(crop.max())
        scale = self.rng.uniform(0.6, 1.0)
        offset = self.rng.uniform(0, 1 - scale)
        if high - low > 1e-3 and self.rng.uniform() < 0.5:
            crop = (crop - low) / (high - low)
        return np.ascontiguousarray(crop * scale + offset, dtype=np.float32)

    def _kernel(self) -> np.ndarray:
        kernel = np.rot90(self.kernels[self.rng.integers(len(self.kernels))], self.rng.integers(4))
        if self.rng.uniform() < 0.5:
            kernel = kernel[:, ::-1]
        return np.ascontiguousarray(kernel)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(blurry, sharp)``, each ``(size, 1, patch, patch)`` float32 in [0, 1]."""
        side = self.patch + self.support - 1
        margin = (self.support - 1) // 2
        crops = torch.from_numpy(np.stack([self._crop(side) for _ in range(size)]))
        kernels = torch.from_numpy(np.stack([self._kernel() for _ in range(size)]))
        # grouped valid correlation: one kernel per image
        blurry = F.conv2d(crops[None], kernels[:, None].flip(-2, -1), groups=size)[0]
        sigma = torch.from_numpy(
            self.rng.uniform(*self.noise, size=(size, 1, 1)).astype(np.float32)
        )
        noise = torch.from_numpy(self.rng.standard_normal(blurry.shape).astype(np.float32))
        blurry = torch.round((blurry + sigma * noise).clamp(0, 1) * 255) / 255
        sharp = crops[:, margin : margin + self.patch, margin : margin + self.patch]
        return blurry[:, None].contiguous(), sharp[:, None].contiguous()
