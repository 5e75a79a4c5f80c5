"""Reading and writing images as ``(1, C, H, W)`` float tensors in [0, 1]."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import imageio.v3 as iio
import kornia
import numpy as np
import torch

from weakdeblur.data.sample import DataError

log = logging.getLogger(__name__)
_noted_colour: set[str] = set()


def _to_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(array.astype(np.float32), 0.0, 1.0)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    raise DataError(f"{path}: unsupported pixel type {array.dtype}")


def check_image_path(path: str | os.PathLike) -> Path:
    """``path`` as a :class:`Path` if it names a file; a folder or a missing path is a
    :class:`DataError` that says what to do."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"is a folder: {path} (use data=folder data.root={path})")
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"not a readable image: {path} (empty file)")
    return path


def check_readable_image(path: str | os.PathLike) -> Path:
    """:func:`check_image_path`, then a full decode of the file: "not a readable image: PATH"
    when no reader knows it or its data is cut short (a truncated PNG has a good header)."""
    path = check_image_path(path)
    try:
        iio.imread(path)
    except Exception as error:  # imageio raises many types for unknown or corrupt files
        raise DataError(f"not a readable image: {path}") from error
    return path


def read_image(path: str | os.PathLike, grey: bool = True) -> torch.Tensor:
    """Read an image file as ``(1, C, H, W)`` float32 in [0, 1].

    With ``grey=True`` a colour image is converted to luminance (ITU-R 601
    weights, through kornia) and a note is logged once per folder; an alpha
    channel is dropped.
    """
    path = check_image_path(path)
    try:
        array = iio.imread(path)
    except Exception as error:  # imageio raises many types for corrupt files
        raise DataError(f"not a readable image: {path}") from error
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4) or min(array.shape[:2]) < 2:
        raise DataError(f"{path}: expected a 2-D grey or RGB image, got array shape {array.shape}")
    array = _to_float(array, path)
    if array.shape[-1] in (2, 4):  # drop alpha
        array = array[..., :-1]
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None]
    if grey and tensor.shape[1] == 3:
        folder = str(path.parent)
        if folder not in _noted_colour:
            _noted_colour.add(folder)
            log.warning("colour images in %s are converted to grey (luminance)", folder)
        tensor = kornia.color.rgb_to_grayscale(tensor)
    return tensor.contiguous()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` tensor in [0, 1] → ``(H, W[, C])`` uint8 array."""
    array = image.detach().float().cpu().clamp(0, 1)
    if array.ndim == 4:
        array = array[0]
    array = (array.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return array[..., 0] if array.shape[-1] == 1 else array


def write_image(path: str | os.PathLike, image: torch.Tensor) -> None:
    """Write a [0, 1] image atomically (temporary name, then rename)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        iio.imwrite(temporary, to_uint8(image), extension=path.suffix)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def kernel_to_image(kernel: torch.Tensor, gap: int = 1) -> torch.Tensor:
    """Scale a kernel to its maximum for display (as the reference saves k.png).

    A grid of kernels ``(1, P, Q, kh, kw)`` becomes one ``(1, 1, H, W)`` mosaic,
    the cells in place, separated by ``gap`` pixels at half grey, all scaled by the
    largest value of the grid.
    """
    kernel = kernel.detach().float()
    kernel = kernel / kernel.max().clamp_min(1e-12)
    if kernel.ndim != 5:
        return kernel
    rows, cols, kh, kw = kernel.shape[1:]
    mosaic = torch.full((rows * (kh + gap) - gap, cols * (kw + gap) - gap), 0.5)
    for row in range(rows):
        for col in range(cols):
            top, left = row * (kh + gap), col * (kw + gap)
            mosaic[top : top + kh, left : left + kw] = kernel[0, row, col]
    return mosaic[None, None]
