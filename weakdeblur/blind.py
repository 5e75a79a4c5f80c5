r"""Classical blind deconvolution: L0-regularised intensity and gradient prior.

J. Pan, Z. Hu, Z. Su, M.-H. Yang, "Deblurring Text Images via L0-Regularized
Intensity and Gradient Prior", CVPR 2014 (and its natural-image defaults).
Written here from the paper and the notes in the project docs; the kernel
orientation is the project's: :math:`y = x \star k` is a *correlation*
(``F.conv2d``), and every kernel returned is in that orientation.

The estimator alternates, coarse to fine, between

* the **latent image** (half-quadratic splitting, FFT solves, circular
  forward differences :math:`\nabla`):

  .. math::

      \min_x \|x \star k - y\|^2 + \lambda_p \|x\|_0 + \lambda_g \|\nabla x\|_0 ,

  with auxiliary :math:`u \approx x` (hard threshold :math:`u = x [x^2 \ge \lambda_p/\beta_p]`,
  :math:`\beta_p = 2\lambda_p, 4\lambda_p, \dots < 8`) and
  :math:`(h, v) \approx \nabla x` (hard threshold on :math:`h^2 + v^2 \ge \lambda_g / \beta`,
  :math:`\beta = 2\lambda_g, \dots < 10^5`); each x-step is exact:

  .. math::

      \hat x = \mathcal F^{-1}\!\left[\frac{\overline{K} Y + \beta(\overline{D_h} H + \overline{D_v} V)
               + \beta_p U}{|K|^2 + \beta(|D_h|^2 + |D_v|^2) + \beta_p}\right];

* the **kernel**, from the strong edges of :math:`\nabla x` only (Cho & Lee's
  threshold, so that each of four orientation bins keeps at least
  :math:`\max(20\,k_s, 10)` pixels), by conjugate gradients on

  .. math::

      \min_k \|\nabla x \star k - \nabla y\|^2 + \gamma \|k\|^2 ,\qquad \gamma = 2,

  with the kernel's support enforced, then cleaned: values below 5 % of the
  maximum set to zero, 8-connected components of mass below 0.1 dropped,
  clamped to :math:`\ge 0`, normalised.

Coarse to fine: the kernel sizes shrink by :math:`\sqrt{1/2}` per level down
to about 5 px; each level's y is the antialiased downsampling of the input;
the kernel is upsampled between levels and re-centred on its centroid after
each level; the latent image restarts from y at every level while
:math:`\lambda_p, \lambda_g` decay by 1.1 per alternation (floored at 1e-4).
The blurry image is padded to a smooth periodic extension before each FFT
solve so that its borders do not ring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from weakdeblur.nonblind import deconvolve


class BlindDeconvolutionError(ValueError):
    """The estimator cannot run on this input (e.g. a kernel as large as the image)."""


@dataclass(frozen=True)
class L0Settings:
    """Parameters of :func:`estimate_kernel` (Pan et al.'s published defaults)."""

    lambda_pixel: float = 4e-3  # λp, weight of ‖x‖₀
    lambda_grad: float = 4e-3  # λg, weight of ‖∇x‖₀
    alternations: int = 5  # latent/kernel alternations per pyramid level
    kernel_weight: float = 2.0  # γ of the kernel step
    cg_iterations: int = 20
    kappa: float = 2.0  # growth of the splitting penalties
    beta_max: float = 1e5
    beta_pixel_max: float = 8.0
    final_threshold: float = 20.0  # final kernel: zero below max / final_threshold
    edge_pixels: int = 20  # Cho & Lee: each orientation bin keeps max(edge_pixels·ks, 10) pixels


# -- Fourier helpers (correlation orientation) -----------------------------------------


def spectrum(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    r""":math:`G = \mathcal F[k]` of the kernel zero-padded to ``shape`` with its centre
    :math:`((k_h-1)/2, (k_w-1)/2)` rolled to the origin. Correlation with k is
    :math:`\mathcal F^{-1}[X \overline{G}]`, true convolution :math:`\mathcal F^{-1}[X G]`."""
    kh, kw = kernel.shape[-2:]
    padded = kernel.new_zeros(*kernel.shape[:-2], *shape)
    padded[..., :kh, :kw] = kernel
    padded = torch.roll(padded, shifts=(-((kh - 1) // 2), -((kw - 1) // 2)), dims=(-2, -1))
    return torch.fft.fft2(padded)


def kernel_from_spectrum(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`spectrum`: the ``size`` window around the origin of ``F^{-1}[values]``."""
    kh, kw = size
    image = torch.fft.ifft2(values).real
    image = torch.roll(image, shifts=((kh - 1) // 2, (kw - 1) // 2), dims=(-2, -1))
    return image[..., :kh, :kw]


def difference_spectra(shape: tuple[int, int], dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Spectra :math:`D_h, D_v` of the circular forward differences
    :math:`(\nabla_h x)_i = x_{i+1} - x_i` (applied as :math:`\mathcal F^{-1}[D X]`)."""
    height, width = shape
    column = torch.arange(width, dtype=dtype, device=device)
    row = torch.arange(height, dtype=dtype, device=device)
    d_h = torch.exp(2j * math.pi * column / width) - 1
    d_v = torch.exp(2j * math.pi * row / height) - 1
    return d_h.reshape(1, -1).expand(height, width), d_v.reshape(-1, 1).expand(height, width)


def smooth_periodic_pad(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Extend ``(…, H, W)`` to ``shape`` so that its periodic extension is continuous.

    Each new row (then column) blends linearly from the image's last row to its
    first, so the wrap-around has no jump (a simple stand-in for Liu & Jia's
    smooth boundary; the blurry data the solver must explain stays untouched).
    """
    height, width = image.shape[-2:]
    out_h, out_w = shape
    if out_h > height:
        t = torch.arange(1, out_h - height + 1, dtype=image.dtype, device=image.device)
        t = (t / (out_h - height + 1)).reshape(-1, 1)
        strip = (1 - t) * image[..., -1:, :] + t * image[..., :1, :]
        image = torch.cat([image, strip], dim=-2)
    if out_w > width:
        t = torch.arange(1, out_w - width + 1, dtype=image.dtype, device=image.device)
        t = (t / (out_w - width + 1)).reshape(1, -1)
        strip = (1 - t) * image[..., :, -1:] + t * image[..., :, :1]
        image = torch.cat([image, strip], dim=-1)
    return image


def _fft_size(n: int) -> int:
    """The smallest integer ≥ n whose prime factors are 2, 3 and 5 (fast FFTs)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


# -- the two sub-problems -----------------------------------------------------------------


def l0_latent(
    padded: torch.Tensor,
    kernel: torch.Tensor,
    lambda_pixel: float,
    lambda_grad: float,
    settings: L0Settings = L0Settings(),
) -> torch.Tensor:
    r"""Latent image of Pan et al.'s x-step on an already smoothly padded ``(H, W)`` blurry image."""
    shape = tuple(padded.shape[-2:])
    half = shape[-1] // 2 + 1  # real FFTs: the non-negative column frequencies

    def forward(image: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(image)

    def inverse(values: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(values, s=shape)

    g = spectrum(kernel, shape)[..., :half]
    d_h, d_v = (d[..., :half] for d in difference_spectra(shape, padded.dtype, padded.device))
    data = g * forward(padded)  # conj(transfer) · Y with transfer = conj(G)
    kernel_energy = g.abs() ** 2
    gradient_energy = d_h.abs() ** 2 + d_v.abs() ** 2
    latent, latent_hat = padded, forward(padded)
    beta_pixel = 2 * lambda_pixel
    while beta_pixel < settings.beta_pixel_max:
        u = torch.where(latent**2 < lambda_pixel / beta_pixel, 0.0, latent)
        u_hat = forward(u)
        beta = 2 * lambda_grad
        while beta < settings.beta_max:
            h = inverse(d_h * latent_hat)
            v = inverse(d_v * latent_hat)
            weak = h**2 + v**2 < lambda_grad / beta
            h, v = h.masked_fill(weak, 0.0), v.masked_fill(weak, 0.0)
            numerator = (
                data
                + beta * (d_h.conj() * forward(h) + d_v.conj() * forward(v))
                + beta_pixel * u_hat
            )
            latent_hat = numerator / (kernel_energy + beta * gradient_energy + beta_pixel)
            beta *= settings.kappa
        latent = inverse(latent_hat)
        beta_pixel *= settings.kappa
    return latent


def _gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences on the ``(H-1, W-1)`` grid where both exist."""
    return (
        image[..., :-1, 1:] - image[..., :-1, :-1],
        image[..., 1:, :-1] - image[..., :-1, :-1],
    )


def edge_threshold(
    grad_x: torch.Tensor, grad_y: torch.Tensor, kernel_size: int, pixels: int
) -> float:
    """Cho & Lee's first threshold on squared gradient magnitudes: the largest value (on a
    6e-5 grid) at which each of four orientation bins still keeps ``max(pixels·ks, 10)`` pixels."""
    magnitude = (grad_x**2 + grad_y**2).flatten()
    angle = torch.atan(grad_y.flatten() / grad_x.flatten())  # NaN for 0/0: in no bin
    keep = max(pixels * kernel_size, 10)
    quarter = math.pi / 4
    threshold = math.inf
    for low in (0.0, quarter, -quarter, -2 * quarter):
        values = magnitude[(angle >= low) & (angle < low + quarter)]
        if values.numel() < keep:
            return 0.0
        threshold = min(threshold, float(torch.topk(values, keep).values[-1]))
    step = 6e-5
    return math.floor(threshold / step) * step


def estimate_kernel_step(
    blurred_gradients: tuple[torch.Tensor, torch.Tensor],
    latent_gradients: tuple[torch.Tensor, torch.Tensor],
    size: tuple[int, int],
    settings: L0Settings = L0Settings(),
) -> torch.Tensor:
    r"""Kernel step: conjugate gradients on
    :math:`(\sum_d |\hat L_d|^2 + \gamma) k = \sum_d \mathcal F^{-1}[\hat L_d \overline{\hat B_d}]`
    restricted to the support (correlation orientation), from a uniform start, then pruned."""
    shape = tuple(blurred_gradients[0].shape[-2:])
    latent_hat = [torch.fft.fft2(g) for g in latent_gradients]
    blurred_hat = [torch.fft.fft2(g) for g in blurred_gradients]
    energy = sum(lh.abs() ** 2 for lh in latent_hat)
    rhs = kernel_from_spectrum(
        sum(lh * bh.conj() for lh, bh in zip(latent_hat, blurred_hat, strict=True)), size
    )

    def normal(k: torch.Tensor) -> torch.Tensor:
        return kernel_from_spectrum(energy * spectrum(k, shape), size) + settings.kernel_weight * k

    k = torch.full(size, 1.0 / (size[0] * size[1]), dtype=rhs.dtype, device=rhs.device)
    residual = rhs - normal(k)
    direction = residual.clone()
    rho = float((residual * residual).sum())
    for _ in range(settings.cg_iterations):
        if rho < 1e-20:
            break
        mapped = normal(direction)
        alpha = rho / float((direction * mapped).sum())
        k = k + alpha * direction
        residual = residual - alpha * mapped
        rho_next = float((residual * residual).sum())
        direction = residual + (rho_next / rho) * direction
        rho = rho_next
    k = torch.where(k < 0.05 * k.max(), 0.0, k)
    return _prune(k)


def _prune(kernel: torch.Tensor, min_mass: float = 0.1) -> torch.Tensor:
    """Drop 8-connected components of mass below ``min_mass`` (of the normalised kernel)."""
    k = kernel.clamp(min=0)
    total = float(k.sum())
    if total <= 0:
        return k
    k = k / total
    array = k.detach().cpu().numpy()
    labels, count = ndimage.label(array > 0, structure=np.ones((3, 3)))
    if count > 1:
        masses = ndimage.sum(array, labels, index=np.arange(1, count + 1))
        small = np.isin(labels, 1 + np.flatnonzero(masses < min_mass))
        k = k.masked_fill(torch.from_numpy(small).to(k.device), 0.0)
    total = float(k.sum())
    return k / total if total > 0 else kernel.clamp(min=0) / float(kernel.clamp(min=0).sum())


# -- kernel bookkeeping between levels --------------------------------------------------------


def _fix_size(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Trim or zero-pad a square kernel to ``size``, always on the side with less mass."""
    k = kernel
    while k.shape[-2] != size or k.shape[-1] != size:
        for dim in (-2, -1):
            other = -1 if dim == -2 else -2
            profile = k.sum(other)
            n = k.shape[dim]
            first_lighter = bool(profile[0] < profile[-1])
            if n > size:
                k = k.narrow(dim, 1, n - 1) if first_lighter else k.narrow(dim, 0, n - 1)
            elif n < size:
                pad = [0, 0, 0, 0]
                side = (1 if first_lighter else 0) if dim == -1 else (3 if first_lighter else 2)
                pad[side] = 1
                k = F.pad(k, pad)
    return k


def _resize_kernel(kernel: torch.Tensor, factor: float, size: int) -> torch.Tensor:
    n = max(1, round(kernel.shape[-1] * factor))
    k = F.interpolate(kernel[None, None], size=(n, n), mode="bicubic", align_corners=False)[0, 0]
    k = _fix_size(k.clamp(min=0), size)
    total = float(k.sum())
    return k / total if total > 0 else k


def centre_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Shift the kernel by whole pixels so that its centroid sits at the centre (zeros fill)."""
    kh, kw = kernel.shape[-2:]
    total = float(kernel.sum())
    if total <= 0:
        return kernel
    rows = torch.arange(kh, dtype=kernel.dtype, device=kernel.device)
    cols = torch.arange(kw, dtype=kernel.dtype, device=kernel.device)
    row_centroid = float((kernel.sum(1) * rows).sum()) / total
    col_centroid = float((kernel.sum(0) * cols).sum()) / total
    dr = round((kh - 1) / 2 - row_centroid)
    dc = round((kw - 1) / 2 - col_centroid)
    padded = F.pad(kernel, (kw, kw, kh, kh))
    return padded[kh - dr : 2 * kh - dr, kw - dc : 2 * kw - dc]


def pyramid_sizes(kernel_size: int) -> list[int]:
    """Odd kernel sizes from the coarsest level to the finest (27 → [5, 7, 11, 15, 21, 27]-like)."""
    ratio = math.sqrt(0.5)
    levels = max(math.floor(math.log(5 / kernel_size) / math.log(ratio)), 0) + 1
    sizes = [math.ceil(kernel_size * ratio**s) for s in range(levels)]
    return [s + (s % 2 == 0) for s in reversed(sizes)]


# -- the estimator --------------------------------------------------------------------------------


@dataclass
class BlindResult:
    kernel: torch.Tensor  # (kh, kw), correlation orientation, sums to one
    latent: torch.Tensor  # the last intermediate (L0) latent image, y-sized


def estimate_kernel(
    blurry: torch.Tensor, kernel_size: int | tuple[int, int], settings: L0Settings = L0Settings()
) -> BlindResult:
    """Estimate a square, odd ``kernel_size`` blur kernel from a grey ``(H, W)`` or
    ``(1, 1, H, W)`` image in [0, 1] (Pan et al. 2014, coarse to fine)."""
    if isinstance(kernel_size, tuple | list):
        kernel_size = max(kernel_size)
    y = blurry.detach().double().reshape(blurry.shape[-2:])
    height, width = y.shape
    if kernel_size % 2 == 0:
        kernel_size += 1
    if kernel_size < 3 or 2 * kernel_size > min(height, width):
        raise BlindDeconvolutionError(
            f"a {kernel_size}-px kernel needs an image at least twice as large "
            f"(and a kernel size of at least 3); the image is {height}x{width}"
        )
    sizes = pyramid_sizes(kernel_size)
    ratio = math.sqrt(0.5)
    lambda_pixel, lambda_grad = settings.lambda_pixel, settings.lambda_grad
    threshold = None
    kernel = None
    latent = y
    for level, size in enumerate(sizes):
        scale = ratio ** (len(sizes) - 1 - level)
        if scale < 1:
            shape = (max(round(height * scale), size + 2), max(round(width * scale), size + 2))
            ys = F.interpolate(y[None, None], size=shape, mode="bilinear", antialias=True)[0, 0]
        else:
            ys = y
        if kernel is None:
            kernel = torch.zeros(size, size, dtype=y.dtype, device=y.device)
            centre = (size - 1) // 2
            kernel[centre, centre : centre + 2] = 0.5
        else:
            kernel = _resize_kernel(kernel, 1 / ratio, size)
        blurred_gradients = _gradients(ys)
        if threshold is None:
            threshold = edge_threshold(*_gradients(ys), size, settings.edge_pixels)
            if 0 < threshold < lambda_grad / 10:
                lambda_grad = lambda_pixel = threshold
        level_threshold = threshold
        h, w = ys.shape
        padded = smooth_periodic_pad(ys, (_fft_size(h + size - 1), _fft_size(w + size - 1)))
        for _ in range(settings.alternations):
            latent = l0_latent(padded, kernel, lambda_pixel, lambda_grad, settings)[:h, :w]
            gx, gy = _gradients(latent)
            strong = gx**2 + gy**2 < level_threshold
            while bool(strong.all()) and level_threshold > 0:
                level_threshold *= 0.81
                strong = gx**2 + gy**2 < level_threshold
            latent_gradients = (gx.masked_fill(strong, 0.0), gy.masked_fill(strong, 0.0))
            level_threshold /= 1.1
            kernel = estimate_kernel_step(
                blurred_gradients, latent_gradients, (size, size), settings
            )
            lambda_pixel = max(lambda_pixel / 1.1, 1e-4)
            lambda_grad = max(lambda_grad / 1.1, 1e-4)
        kernel = centre_kernel(kernel).clamp(min=0)
        kernel = kernel / kernel.sum()
    kernel = torch.where(kernel < kernel.max() / settings.final_threshold, 0.0, kernel)
    kernel = kernel / kernel.sum()
    return BlindResult(kernel=kernel, latent=latent)


def blind_deconvolve(
    blurry: torch.Tensor,
    kernel_size: int | tuple[int, int],
    settings: L0Settings = L0Settings(),
    weight: float = 3000.0,
    alpha: float = 2.0 / 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x̄ and k̄ for a ``(1, C, H, W)`` image: the kernel is estimated on the luminance
    (Y of YCbCr for RGB), then every channel is deconvolved non-blind with it
    (:func:`weakdeblur.nonblind.deconvolve`, hyper-Laplacian prior)."""
    grey = blurry.detach().double()
    if grey.shape[1] == 3:
        grey = kornia.color.rgb_to_ycbcr(grey)[:, :1]
    kernel = estimate_kernel(grey, kernel_size, settings).kernel
    restored = torch.cat(
        [
            deconvolve(blurry[:, c : c + 1], kernel, weight=weight, alpha=alpha)
            for c in range(blurry.shape[1])
        ],
        dim=1,
    )
    return restored, kernel.to(blurry.dtype).reshape(1, 1, *kernel.shape)
