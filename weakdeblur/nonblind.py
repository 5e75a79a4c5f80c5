r"""Fast non-blind deconvolution with a hyper-Laplacian gradient prior (Krishnan & Fergus, 2009).

Given a blurry image :math:`y` and a known kernel :math:`k` (correlation
orientation, as everywhere in this project: :math:`y = x \star k` is
``F.conv2d``), solve

.. math::

    \hat x = \arg\min_x \frac{\lambda}{2}\,\|x \star k - y\|_2^2
             + \sum_i |(\nabla_h x)_i|^\alpha + |(\nabla_v x)_i|^\alpha,

with :math:`0 < \alpha \le 1` (:math:`\alpha = 1` is anisotropic total
variation). Half-quadratic splitting introduces auxiliary gradients
:math:`w` and a penalty :math:`\beta` that grows geometrically:

.. math::

    \min_{x, w}\ \frac{\lambda}{2}\|x \star k - y\|^2
        + \frac{\beta}{2}\|\nabla x - w\|^2 + |w|^\alpha .

* **x-step** (quadratic, solved exactly with FFTs under periodic boundaries):

  .. math::

      \hat x = \mathcal F^{-1}\left(
        \frac{\lambda\,\overline{K}\,Y + \beta\,(\overline{D_h} W_h + \overline{D_v} W_v)}
             {\lambda |K|^2 + \beta (|D_h|^2 + |D_v|^2)} \right),

  where capitals are 2-D DFTs and :math:`K`, :math:`D_h`, :math:`D_v` are the
  transfer functions of the correlations with :math:`k` and with the
  forward differences (for a correlation they are the conjugates of the
  filters' DFTs).
* **w-step** (separable per pixel):
  :math:`w^\star = \arg\min_w |w|^\alpha + \tfrac{\beta}{2}(w - v)^2`, with
  :math:`v = \nabla x`. For :math:`\alpha = 1` this is soft thresholding at
  :math:`1/\beta`; for :math:`\alpha < 1` the non-zero stationary point is
  found by Newton's method started at :math:`v` and kept only if it beats
  :math:`w = 0`.

Boundaries: the image is mirrored to twice its size before the FFTs, so that
its periodic extension has no jumps (no ringing from the borders), and the
result is cropped back. Cost: a few dozen FFTs of a :math:`2H \times 2W`
image, a fraction of a second for 255×255 on a CPU.
"""

from __future__ import annotations

import torch


def _transfer(kernel: torch.Tensor, shape: tuple[int, int], centred: bool = True) -> torch.Tensor:
    r"""Transfer function of the circular correlation with ``kernel`` on a ``shape`` grid.

    With :math:`g[d] = k[d + c]` (:math:`c = ((k_h - 1)/2, (k_w - 1)/2)` when
    ``centred``, else 0), :math:`(x \star k)[i] = \sum_d x[i + d]\, g[d]`, whose DFT
    is :math:`X \cdot \overline{G}`: the returned array is :math:`\overline{G}`.
    """
    kh, kw = kernel.shape[-2:]
    padded = torch.zeros(*kernel.shape[:-2], *shape, dtype=kernel.dtype, device=kernel.device)
    padded[..., :kh, :kw] = kernel
    if centred:
        padded = torch.roll(padded, shifts=(-((kh - 1) // 2), -((kw - 1) // 2)), dims=(-2, -1))
    return torch.conj(torch.fft.fft2(padded))


def _shrink(values: torch.Tensor, beta: float, alpha: float, newton_steps: int = 8) -> torch.Tensor:
    r""":math:`\arg\min_w |w|^\alpha + \frac{\beta}{2}(w - v)^2`, elementwise."""
    if alpha >= 1.0:
        return torch.sign(values) * torch.clamp(values.abs() - 1.0 / beta, min=0.0)
    magnitude = values.abs()
    w = magnitude.clone()
    for _ in range(newton_steps):
        # f(w) = α w^(α-1) + β (w - |v|) = 0 on w > 0
        safe = w.clamp(min=1e-8)
        f = alpha * safe.pow(alpha - 1) + beta * (safe - magnitude)
        df = alpha * (alpha - 1) * safe.pow(alpha - 2) + beta
        w = (safe - f / df).clamp(min=0.0, max=None)
        w = torch.minimum(w, magnitude)
    cost_w = w.pow(alpha) + 0.5 * beta * (w - magnitude) ** 2
    cost_zero = 0.5 * beta * magnitude**2
    return torch.where(cost_w < cost_zero, w, torch.zeros_like(w)) * torch.sign(values)


def deconvolve(
    blurry: torch.Tensor,
    kernel: torch.Tensor,
    weight: float = 3000.0,
    alpha: float = 2.0 / 3.0,
    beta_start: float = 1.0,
    beta_max: float = 256.0,
    beta_rate: float = 2.0 * 2.0**0.5,
    inner: int = 1,
) -> torch.Tensor:
    """Deconvolve ``blurry`` ``(1, C, H, W)`` with the correlation kernel ``kernel`` ``(…, kh, kw)``.

    Args:
        weight: λ, the data-term weight (larger: sharper, noisier).
        alpha: exponent of the gradient prior (1 = total variation; 2/3 and 0.8 are
            the usual hyper-Laplacian choices).
        beta_start, beta_max, beta_rate: the continuation of the splitting penalty β.
        inner: x/w alternations per value of β.

    Returns:
        the estimate at ``blurry``'s size, clamped to [0, 1].
    """
    y = blurry.detach().double()
    height, width = y.shape[-2:]
    k = kernel.detach().double().reshape(1, 1, *kernel.shape[-2:]).to(y.device)
    k = k / k.sum()
    # mirror to 2H x 2W: the periodic extension is continuous
    mirrored = torch.cat([y, torch.flip(y, dims=(-1,))], dim=-1)
    mirrored = torch.cat([mirrored, torch.flip(mirrored, dims=(-2,))], dim=-2)
    shape = tuple(mirrored.shape[-2:])
    transfer = _transfer(k, shape)
    horizontal = torch.zeros(1, 1, 1, 2, dtype=y.dtype, device=y.device)
    horizontal[..., 0, 0], horizontal[..., 0, 1] = -1.0, 1.0  # (∇_h x)[i] = x[i+1] - x[i]
    vertical = horizontal.transpose(-1, -2)
    grad_h = _transfer(horizontal, shape, centred=False)
    grad_v = _transfer(vertical, shape, centred=False)
    data_numerator = weight * torch.conj(transfer) * torch.fft.fft2(mirrored)
    data_denominator = weight * transfer.abs() ** 2
    gradient_energy = grad_h.abs() ** 2 + grad_v.abs() ** 2

    x = mirrored.clone()
    beta = beta_start
    while beta <= beta_max * (1 + 1e-9):
        for _ in range(inner):
            x_hat = torch.fft.fft2(x)
            v_h = torch.fft.ifft2(grad_h * x_hat).real
            v_v = torch.fft.ifft2(grad_v * x_hat).real
            w_h, w_v = _shrink(v_h, beta, alpha), _shrink(v_v, beta, alpha)
            numerator = data_numerator + beta * (
                torch.conj(grad_h) * torch.fft.fft2(w_h) + torch.conj(grad_v) * torch.fft.fft2(w_v)
            )
            x = torch.fft.ifft2(numerator / (data_denominator + beta * gradient_energy)).real
        beta *= beta_rate
    return x[..., :height, :width].clamp(0, 1).to(blurry.dtype)


def blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Circular correlation with ``kernel`` centred as in :func:`_transfer` (for tests and checks)."""
    k = kernel.double().reshape(1, 1, *kernel.shape[-2:])
    transfer = _transfer(k / k.sum(), tuple(image.shape[-2:]))
    return torch.fft.ifft2(torch.fft.fft2(image.double()) * transfer).real.to(image.dtype)
