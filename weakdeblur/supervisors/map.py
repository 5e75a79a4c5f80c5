r"""A classical MAP supervisor: blind L0 kernel estimation, then non-blind deconvolution.

For each blurry image :math:`y` (in :meth:`MAPSupervisor.prepare`):

1. :math:`\bar k` = the L0-regularised coarse-to-fine kernel estimate of Pan et al.
   (CVPR 2014), :func:`weakdeblur.blind.estimate_kernel`, on the luminance;
2. :math:`\bar x = H(y; \bar k)`, the hyper-Laplacian non-blind deconvolution
   (:func:`weakdeblur.nonblind.deconvolve`, Krishnan & Fergus) of every channel.

The method also needs :math:`g(v)` for other inputs — :math:`g(\hat y)` in the
consistency loss (Eq. 6) and the stopping statistic (Eq. 7) — and needs it
*differentiable* in :math:`v`. :math:`H` is not (it thresholds), so :math:`g`
is the affine map that agrees with :math:`\bar x` at :math:`y` and moves with
the linear (Tikhonov) deconvolution :math:`D(\cdot; \bar k)` elsewhere:

.. math::

    g(v) = \bar x + D(v - y;\ \bar k), \qquad
    D(r; k) = \mathcal F^{-1}\!\left[\frac{G\,R}{|G|^2 + \mu(|D_h|^2 + |D_v|^2)}\right]

(:math:`G` the kernel's spectrum in the correlation orientation, :math:`D_{h,v}`
forward differences, :math:`r` mirrored to twice its size first so the solve
has no border jumps). So :math:`g(y) = \bar x` exactly, :math:`g(\hat y) - g(y)
= D(\hat y - y)` is the deconvolved residual, and the Jacobian of :math:`g` is
the fixed linear map :math:`D(\cdot; \bar k)`, i.e. :math:`g(v) = D(v; \bar k)`
up to the constant that makes :math:`g(y)` the better, non-linear estimate.
``xbar: linear`` drops that constant (:math:`g = D`, :math:`\bar x = D(y)`).

Estimates are cached per image (by content), so :meth:`prepare` may be called
repeatedly (the runner checks images before it solves them) at no extra cost.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import replace

import torch

from weakdeblur.blind import (
    BlindDeconvolutionError,
    L0Settings,
    blind_deconvolve,
    difference_spectra,
    spectrum,
)
from weakdeblur.data.sample import Sample
from weakdeblur.supervisors.base import Supervisor
from weakdeblur.supervisors.errors import SupervisorError


def linear_deconvolve(image: torch.Tensor, kernel: torch.Tensor, smoothness: float) -> torch.Tensor:
    r"""The linear map :math:`D(v; k)` (Tikhonov on gradients, mirrored borders), differentiable.

    ``image`` ``(B, C, H, W)``, ``kernel`` ``(kh, kw)`` in correlation orientation.
    """
    height, width = image.shape[-2:]
    mirrored = torch.cat([image, torch.flip(image, dims=(-1,))], dim=-1)
    mirrored = torch.cat([mirrored, torch.flip(mirrored, dims=(-2,))], dim=-2)
    shape = tuple(mirrored.shape[-2:])
    g = spectrum(kernel.to(image.dtype), shape)
    denominator = g.abs() ** 2 + smoothness * sum(
        d.abs() ** 2 for d in difference_spectra(shape, image.dtype, image.device)
    )
    solved = torch.fft.ifft2(g * torch.fft.fft2(mirrored) / denominator).real
    return solved[..., :height, :width]


class MAPSupervisor(Supervisor):
    """g = classical blind deconvolution (L0 kernel estimate + non-blind deconvolution).

    Args:
        lambda_pixel, lambda_grad, alternations: the L0 estimator's weights and
            alternations per pyramid level (:class:`weakdeblur.blind.L0Settings`).
        weight, alpha: the hyper-Laplacian deconvolution's data weight and exponent (x̄).
        smoothness: μ of the linear map D (the Jacobian of g).
        xbar: ``hyper_laplacian`` (x̄ = H(y; k̄), g affine) or ``linear`` (x̄ = D(y; k̄), g = D).
        cache_size: how many images' estimates are kept.
    """

    XBAR = ("hyper_laplacian", "linear")

    def __init__(
        self,
        lambda_pixel: float = 4e-3,
        lambda_grad: float = 4e-3,
        alternations: int = 5,
        weight: float = 1000.0,
        alpha: float = 0.8,
        smoothness: float = 2e-3,
        xbar: str = "hyper_laplacian",
        cache_size: int = 64,
    ):
        super().__init__()
        if xbar not in self.XBAR:
            raise SupervisorError(f"supervisor.xbar must be one of {self.XBAR}, got {xbar!r}")
        if smoothness <= 0 or weight <= 0 or not 0 < alpha <= 2:
            raise SupervisorError("supervisor.smoothness and weight must be > 0, alpha in (0, 2]")
        self.settings = replace(
            L0Settings(),
            lambda_pixel=lambda_pixel,
            lambda_grad=lambda_grad,
            alternations=alternations,
        )
        self.weight, self.alpha, self.smoothness, self.xbar = weight, alpha, smoothness, xbar
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._current: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.freeze()

    @staticmethod
    def _key(sample: Sample) -> str:
        blurry = sample.blurry.detach().float().cpu().contiguous()
        digest = hashlib.sha1(blurry.numpy().tobytes()).hexdigest()
        return f"{digest}:{tuple(blurry.shape)}:{tuple(sample.kernel_size)}"

    def estimate(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̄ on the CPU, k̄ ``(1, 1, kh, kw)``) for ``sample``, computed once and cached."""
        key = self._key(sample)
        if key not in self._cache:
            blurry = sample.blurry.detach().double().cpu()
            try:
                restored, kernel = blind_deconvolve(
                    blurry, sample.kernel_size, self.settings, weight=self.weight, alpha=self.alpha
                )
            except BlindDeconvolutionError as error:
                raise SupervisorError(
                    f"supervisor=map cannot estimate a kernel for {sample.name}: {error}"
                ) from error
            if self.xbar == "linear":
                restored = linear_deconvolve(blurry, kernel[0, 0], self.smoothness).clamp(0, 1)
            self._cache[key] = (restored.float(), kernel.float())
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def kernel_estimate(self, sample: Sample) -> torch.Tensor:
        """k̄ for ``sample`` (``(1, 1, kh, kw)``, correlation orientation)."""
        return self.estimate(sample)[1]

    def prepare(self, sample: Sample) -> None:
        restored, kernel = self.estimate(sample)
        self._current = (sample.blurry.detach().float().cpu(), restored, kernel)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """g(images) = x̄ + D(images − y; k̄) (``xbar=linear``: D(images; k̄)), in [0, 1]."""
        if self._current is None:
            raise SupervisorError("supervisor=map used before prepare(sample)")
        observed, restored, kernel = (
            t.to(device=images.device, dtype=images.dtype) for t in self._current
        )
        if images.shape[-3:] != observed.shape[-3:]:
            raise SupervisorError(
                f"supervisor=map answers for the observation's size {tuple(observed.shape[-3:])}, "
                f"got {tuple(images.shape[-3:])}"
            )
        if self.xbar == "linear":
            return linear_deconvolve(images, kernel[0, 0], self.smoothness).clamp(0, 1)
        return (
            restored + linear_deconvolve(images - observed, kernel[0, 0], self.smoothness)
        ).clamp(0, 1)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [self(images)]
