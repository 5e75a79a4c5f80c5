"""Synthetic camera-shake kernels.

A kernel is the image of a random camera trajectory: a particle with inertia,
random accelerations and occasional jerks (in the spirit of Boracchi & Foi,
2012, and Chakrabarti's generator), sampled densely and splatted onto a
``size × size`` grid with bilinear weights. Every call is seeded.
"""

from __future__ import annotations

import numpy as np


def camera_shake_kernel(
    size: int,
    seed: int | np.random.Generator,
    length: float | None = None,
    anxiety: float = 0.1,
    jerk_probability: float = 0.02,
    samples: int = 2000,
) -> np.ndarray:
    """Random camera-shake kernel of shape ``(size, size)``, non-negative, summing to one.

    Args:
        size: kernel side in pixels (odd sizes keep the centre on a pixel).
        seed: integer seed or a numpy ``Generator``.
        length: trajectory length in pixels (default: a random fraction of ``size``).
        anxiety: strength of the random accelerations.
        jerk_probability: chance per step of an abrupt direction change.
        samples: trajectory samples.
    """
    if size < 3:
        raise ValueError(f"kernel size must be at least 3, got {size}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if length is None:
        length = rng.uniform(0.6, 1.4) * size
    # complex positions: real = x (column), imag = y (row)
    position = np.zeros(samples, dtype=np.complex128)
    velocity = np.exp(1j * rng.uniform(0, 2 * np.pi))
    centripetal = 0.7 * rng.uniform(0, 1)
    gaussian = 10 * rng.uniform(0, 1)
    for step in range(1, samples):
        jerk = rng.uniform() < jerk_probability * anxiety * 10
        delta = (
            -centripetal * position[step - 1]
            + gaussian * (rng.normal() + 1j * rng.normal()) * anxiety
            + (2 * velocity * np.exp(1j * rng.uniform(0, np.pi)) if jerk else 0)
        ) * (1.0 / samples)
        velocity = velocity + delta
        velocity = velocity / max(abs(velocity), 1e-12) * length / samples
        position[step] = position[step - 1] + velocity
    # fit the trajectory into the kernel support with a 1-pixel margin
    position -= position.mean()
    extent = max(np.abs(position.real).max(), np.abs(position.imag).max(), 1e-6)
    limit = (size - 3) / 2
    if extent > limit:
        position *= limit / extent
    return splat(np.stack([position.imag, position.real], axis=1), size)


def splat(displacements: np.ndarray, size: int) -> np.ndarray:
    """A ``size × size`` kernel from ``(T, 2)`` (row, column) displacements about the
    centre, each sample spread over its four neighbours (bilinear), summing to one."""
    kernel = np.zeros((size, size), dtype=np.float64)
    centre = (size - 1) / 2
    rows, cols = displacements[:, 0] + centre, displacements[:, 1] + centre
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            np.add.at(
                kernel, (np.clip(r0 + dr, 0, size - 1), np.clip(c0 + dc, 0, size - 1)), wr * wc
            )
    return (kernel / kernel.sum()).astype(np.float32)
