r"""No-reference criteria for choosing among candidate results (x_i, k_i) of one blurry image.

A portfolio runs several candidates per image (seeds × arms, and the supervisor's own
estimate); an arbiter must pick one without the ground truth. Each criterion here scores one
candidate from the observation :math:`y` and the candidate's :math:`(x_i, k_i)`, **lower is
better**, and none reads a ground truth:

* :func:`data_fit`: :math:`\|k_i \star x_i - y\|^2 / N` on the interior. Weak by construction:
  every candidate minimises it, and the trivial pair (δ, y) fits exactly (Levin et al., CVPR
  2009).
* :func:`cross_validated_fit`: generalised cross-validation of the kernel alone (Reeves &
  Mersereau, IEEE TIP 1990), with pixel blocks held out: a fixed Tikhonov-gradient
  deconvolution with :math:`k_i` from the kept pixels, scored on how well
  :math:`k_i \star \hat x` predicts the held-out ones. It never uses :math:`x_i`, so it judges
  the kernel under a fixed natural-image prior.
* :func:`cross_scale_inconsistency`: the identity of the cross-scale INR paper (NeurIPS 2024,
  Prop. 1), :math:`(x \star k)\!\downarrow_2 \approx (x\!\downarrow_2) \star (k\!\downarrow_2)`,
  as a relative residual: a pair (x, k) that reproduces y at one scale only by overfitting
  breaks it.
* :func:`gradient_sparsity`: the normalised sparsity :math:`\|\nabla x_i\|_1/\|\nabla x_i\|_2`
  of the candidate's gradients (Krishnan et al., CVPR 2011), a weight-free sharpness measure.
* :func:`kernel_disagreement`: the mean shift- and flip-invariant distance of a candidate's
  kernel to the others' (Mai & Liu, CVPR 2015, fuse several kernel estimates): kernels that
  independent runs agree on are more likely right. Votes are per group, so that several
  supervised candidates sharing g's kernel count once.

Images are ``(1, 1, H, W)`` in [0, 1] at the observation's size; kernels ``(…, kh, kw)``
correlation kernels summing to 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from weakdeblur.metrics import kernel_error
from weakdeblur.physics import blur_same


def _normalised(kernel: torch.Tensor) -> torch.Tensor:
    kernel = kernel.detach().double().reshape(1, 1, *kernel.shape[-2:])
    return kernel / kernel.sum()


def _interior(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    kh, kw = kernel.shape[-2:]
    return image[..., kh // 2 : image.shape[-2] - kh // 2, kw // 2 : image.shape[-1] - kw // 2]


def _grey(image: torch.Tensor) -> torch.Tensor:
    """A ``(1, 1, H, W)`` view of a grey or colour image (the channel mean)."""
    image = image.detach().double()
    return image.mean(dim=-3, keepdim=True) if image.shape[-3] != 1 else image


def data_fit(image: torch.Tensor, kernel: torch.Tensor, blurry: torch.Tensor) -> float:
    """Mean squared residual :math:`\\|k \\star x - y\\|^2 / N` away from the borders (where
    the image-sized estimate has no data), lower is better."""
    k = _normalised(kernel)
    residual = blur_same(image.detach().double(), k, border="replicate") - blurry.double()
    return float(_interior(residual, k).pow(2).mean())


def noise_level(blurry: torch.Tensor) -> float:
    r"""The standard deviation :math:`\hat\sigma` of additive white noise in ``blurry``
    (Immerkær, CVIU 1996): the mask

    .. math:: N = \begin{pmatrix} 1 & -2 & 1 \\ -2 & 4 & -2 \\ 1 & -2 & 1 \end{pmatrix}

    (the difference of two Laplacians) annihilates locally linear intensity, so on a smooth
    (blurred) image its response is noise: :math:`\hat\sigma = \sqrt{\pi/2}\,
    \frac{1}{6 (H-2)(W-2)} \sum |y \star N|`. Measured on the 8 ``data=shake`` crops
    (σ = 0.01, 8-bit): 0.0100–0.0111."""
    y = _grey(blurry)
    mask = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=y.dtype)
    response = F.conv2d(y, mask.to(y.device).reshape(1, 1, 3, 3))
    return float(math.sqrt(math.pi / 2) * response.abs().mean() / 6)


def residual_to_noise(image: torch.Tensor, kernel: torch.Tensor, blurry: torch.Tensor) -> float:
    r""":func:`data_fit` over the noise variance :math:`\hat\sigma^2` estimated from y
    (:func:`noise_level`): about 1 for the true (x, k) (the residual is the noise), below 1 for
    a pair that also fits the noise, well above 1 for a pair that does not explain y: Morozov's
    discrepancy principle, the test of :class:`Arbiter`'s ``discrepancy`` gate."""
    return _residuals_to_noise(blurry, [(image, kernel)])[0]


def _residuals_to_noise(blurry: torch.Tensor, pairs: Sequence[tuple]) -> list[float]:
    """:func:`residual_to_noise` of several (x, k) pairs of one y, σ̂ estimated once."""
    y = _grey(blurry)
    variance = max(noise_level(y) ** 2, 1e-12)
    return [data_fit(_grey(image), kernel, y) / variance for image, kernel in pairs]


def _circular_correlate(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    kh, kw = kernel.shape[-2:]
    padded = F.pad(image, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), mode="circular")
    return F.conv2d(padded, kernel)


def _circular_correlate_adjoint(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    flipped = torch.flip(kernel, dims=(-2, -1))
    kh, kw = kernel.shape[-2:]
    padded = F.pad(image, (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2), mode="circular")
    return F.conv2d(padded, flipped)


def _gradient_normal(image: torch.Tensor) -> torch.Tensor:
    """:math:`D^\\top D x` for circular forward differences (the discrete negative Laplacian)."""
    return (
        4 * image
        - torch.roll(image, 1, -1)
        - torch.roll(image, -1, -1)
        - torch.roll(image, 1, -2)
        - torch.roll(image, -1, -2)
    )


def holdout_mask(shape: tuple[int, int], block: int = 4, fraction: float = 0.25, seed: int = 0):
    """A fixed random mask of ``block``×``block`` pixel blocks: True where a pixel is held out
    (about ``fraction`` of the blocks)."""
    rows, cols = -(-shape[0] // block), -(-shape[1] // block)
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.rand(rows, cols, generator=generator) < fraction
    mask = blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)
    return mask[: shape[0], : shape[1]].reshape(1, 1, *shape)


def cross_validated_fit(
    blurry: torch.Tensor,
    kernel: torch.Tensor,
    weight: float = 1e-3,
    folds: int = 2,
    iterations: int = 60,
    block: int = 4,
    seed: int = 0,
) -> float:
    r"""Held-out prediction error of the kernel, lower is better.

    For each of ``folds`` random block masks :math:`M` (a quarter of the pixels held out),
    solve by conjugate gradients

    .. math:: \hat x = \arg\min_x \|(1 - M) \odot (k \star x - y)\|^2 + w \|\nabla x\|^2

    (circular boundaries, ``iterations`` steps from :math:`y`), then score
    :math:`\|M \odot (k \star \hat x - y)\|^2 / |M|`. The mean over folds is returned.
    """
    y = blurry.detach().double()
    k = _normalised(kernel)
    errors = []
    for fold in range(folds):
        held = holdout_mask(tuple(y.shape[-2:]), block, seed=seed + fold).to(y.device)
        kept = (~held).double()

        def normal(x: torch.Tensor, kept: torch.Tensor = kept) -> torch.Tensor:
            data = _circular_correlate_adjoint(kept * _circular_correlate(x, k), k)
            return data + weight * _gradient_normal(x)

        x = y.clone()
        residual = _circular_correlate_adjoint(kept * y, k) - normal(x)
        direction = residual.clone()
        energy = residual.pow(2).sum()
        for _ in range(iterations):
            product = normal(direction)
            step = energy / (direction * product).sum().clamp_min(1e-30)
            x = x + step * direction
            residual = residual - step * product
            new_energy = residual.pow(2).sum()
            if new_energy < 1e-20:
                break
            direction = residual + (new_energy / energy) * direction
            energy = new_energy
        prediction = _circular_correlate(x, k)
        errors.append(float(((prediction - y) * held).pow(2).sum() / held.sum()))
    return sum(errors) / len(errors)


def _downsample(image: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(image, 2)


def cross_scale_inconsistency(image: torch.Tensor, kernel: torch.Tensor) -> float:
    r"""Relative residual of :math:`(x \star k)\!\downarrow_2 \approx (x\!\downarrow_2) \star
    (k\!\downarrow_2)` (2×2 averaging; :math:`k\!\downarrow_2` renormalised), on the interior,
    lower is better."""
    x = image.detach().double()
    k = _normalised(kernel)
    fine = _downsample(blur_same(x, k, border="replicate"))
    small = _downsample(F.pad(k, (0, k.shape[-1] % 2, 0, k.shape[-2] % 2))) * 4
    small = small / small.sum()
    coarse = blur_same(_downsample(x), small, border="replicate")
    inner = (slice(None), slice(None), slice(k.shape[-2] // 4 + 1, -(k.shape[-2] // 4 + 1) or None))
    inner = (*inner, slice(k.shape[-1] // 4 + 1, -(k.shape[-1] // 4 + 1) or None))
    difference = (fine - coarse)[inner]
    return float(difference.norm() / fine[inner].norm().clamp_min(1e-12))


def gradient_sparsity(image: torch.Tensor) -> float:
    r"""The normalised sparsity of the image's gradients, :math:`\|\nabla x\|_1 / \|\nabla x\|_2`
    (Krishnan, Tay & Fergus, CVPR 2011), lower is sharper: blur spreads the gradients (raises
    the ratio), sharpening concentrates them. Scale-invariant and weight-free; it reads
    :math:`x_i` only, so it cannot tell a sharp image from a ringing one."""
    x = image.detach().double()
    gradients = torch.cat(
        [(x[..., 1:, :] - x[..., :-1, :]).flatten(), (x[..., :, 1:] - x[..., :, :-1]).flatten()]
    )
    norm = gradients.norm()
    return float(gradients.abs().sum() / norm) if norm > 0 else float("inf")


def kernel_disagreement(kernels: Sequence[torch.Tensor], groups: Sequence[object] | None = None):
    """Per kernel, the mean symmetric shift/flip-invariant distance to the kernels of the
    *other* groups (one vote per group: the mean of the group's distances), lower is better.
    ``groups`` labels each kernel (default: every kernel its own group)."""
    groups = list(groups) if groups is not None else list(range(len(kernels)))
    if len(groups) != len(kernels):
        raise ValueError("one group label per kernel")
    distance = [
        [
            0.5 * (kernel_error(a, b) + kernel_error(b, a)) if i != j else 0.0
            for j, b in enumerate(kernels)
        ]
        for i, a in enumerate(kernels)
    ]
    scores = []
    for i, group in enumerate(groups):
        votes = []
        for other in dict.fromkeys(groups):
            if other == group:
                continue
            members = [j for j, g in enumerate(groups) if g == other]
            votes.append(sum(distance[i][j] for j in members) / len(members))
        scores.append(sum(votes) / len(votes) if votes else 0.0)
    return scores


@dataclass
class Candidate:
    """One candidate estimate of an image: ``name``, its kernel-vote ``group`` (candidates that
    share a supervisor's kernel share one), the image at the observation's size, the kernel,
    and the ``arm`` that produced it (for :class:`Arbiter`'s ``prefer``)."""

    name: str
    group: str
    image: torch.Tensor
    kernel: torch.Tensor
    arm: str = ""  # the portfolio arm it came from (``xbar-<arm>`` for g's own estimate)


@dataclass
class Choice:
    """The arbiter's pick: ``index`` into the candidates, each criterion's ``scores`` (lower is
    better), the combined ``total`` the pick minimises, and a one-line ``reason``."""

    index: int
    scores: dict[str, list[float]]
    total: list[float]
    reason: str


def _ranks(values: Sequence[float]) -> list[float]:
    """0 for the lowest value, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2
        start = end + 1
    return ranks


# each criterion: (blurry, candidates) -> one score per candidate, lower is better
CRITERIA: dict[str, Callable[[torch.Tensor, Sequence[Candidate]], list[float]]] = {
    "data_fit": lambda y, cs: [data_fit(_grey(c.image), c.kernel, y) for c in cs],
    "cross_validated_fit": lambda y, cs: [cross_validated_fit(y, c.kernel) for c in cs],
    "cross_scale_inconsistency": lambda y, cs: [
        cross_scale_inconsistency(_grey(c.image), c.kernel) for c in cs
    ],
    "gradient_sparsity": lambda y, cs: [gradient_sparsity(_grey(c.image)) for c in cs],
    "residual_to_noise": lambda y, cs: _residuals_to_noise(y, [(c.image, c.kernel) for c in cs]),
    "kernel_disagreement": lambda y, cs: kernel_disagreement(
        [c.kernel for c in cs], [c.group for c in cs]
    ),
}


POPULATION_CRITERIA = {"kernel_disagreement"}  # a candidate's score depends on the others
DEFAULT_CRITERIA = {"cross_validated_fit": 1.0}  # conf/arbiter/cross_validated.yaml


class Arbiter:
    r"""Pick one of several candidates of an image from the blurry image alone.

    ``criteria`` maps names of :data:`CRITERIA` to weights. With one criterion the candidate
    with the lowest score wins; with several, each criterion ranks the candidates (0 = best)
    and the lowest weighted sum of ranks wins (scale-free: the criteria's units differ). Ties
    go to the earlier candidate.

    Two optional gates narrow the field before the criteria choose, in this order:

    * ``discrepancy`` (Morozov's discrepancy principle): a candidate whose residual exceeds
      ``discrepancy`` × the noise variance estimated from y (:func:`residual_to_noise`) does
      not explain y and is set aside, unless no candidate explains it;
    * ``excess``: a candidate whose residual exceeds the best-fitting candidate's by more than
      ``excess`` × σ̂² is set aside. The absolute gate above fails on nearly noiseless
      images, where every residual is model error and so many σ̂² (Levin: σ̂ ≈ 0.002, even
      SelfDeblur at 1.3–3.1 σ̂²); the excess is the price a candidate pays in data fit for what
      pulled it away from the best fit (g's x̄ for the supervised arm), in units of the noise:
      :math:`(\|k_i \star x_i - y\|^2 - \min_j \|k_j \star x_j - y\|^2) / (N \hat\sigma^2)`;
    * ``prefer``: arm names in order of trust; the candidates of the first listed arm that is
      still in the field are the only ones left (for example the supervised arm, set aside by
      the gates only when g's pull leaves y unexplained).
    """

    def __init__(
        self,
        criteria: Mapping[str, float],
        prefer: Sequence[str] = (),
        discrepancy: float | None = None,
        excess: float | None = None,
    ):
        criteria = dict(criteria or {})
        unknown = sorted(set(criteria) - set(CRITERIA))
        if unknown:
            raise ValueError(
                f"unknown arbiter criterion {unknown[0]!r}; choose from {', '.join(CRITERIA)}"
            )
        if not criteria or any(not weight > 0 for weight in criteria.values()):
            raise ValueError("the arbiter needs at least one criterion, each with a weight > 0")
        for name, value in (("discrepancy", discrepancy), ("excess", excess)):
            if value is not None and not value > 0:
                raise ValueError(f"arbiter.{name} must be a number > 0 or null; got {value}")
        self.criteria = criteria
        self.prefer = [str(arm) for arm in prefer or ()]
        self.discrepancy = discrepancy
        self.excess = excess

    @property
    def needs(self) -> list[str]:
        """The criteria computed: the weighted ones and the gates' (``residual_to_noise``)."""
        gated = self.discrepancy is not None or self.excess is not None
        gate = ["residual_to_noise"] if gated else []
        return list(dict.fromkeys([*self.criteria, *gate]))

    @property
    def per_candidate(self) -> bool:
        """Whether every criterion scores a candidate alone (none compares it with the others):
        then a score at a checkpoint can be set against earlier candidates' (pruning)."""
        return not set(self.criteria) & POPULATION_CRITERIA

    def scores(self, blurry: torch.Tensor, candidates: Sequence[Candidate]) -> dict[str, list]:
        """Each needed criterion's scores of ``candidates`` (lower is better)."""
        y = _grey(blurry)
        return {name: CRITERIA[name](y, candidates) for name in self.needs}

    def combine(self, scores: Mapping[str, Sequence[float]]) -> list[float]:
        """One criterion: its scores; several: the weighted sum of each one's ranks (the
        weighted criteria only: a gate's score does not vote)."""
        if len(self.criteria) == 1:
            return list(scores[next(iter(self.criteria))])
        ranked = {name: _ranks(scores[name]) for name in self.criteria}
        count = len(next(iter(ranked.values())))
        return [sum(self.criteria[name] * ranked[name][i] for name in ranked) for i in range(count)]

    def field(
        self, scores: Mapping[str, Sequence[float]], candidates: Sequence[Candidate]
    ) -> tuple[list[int], list[str]]:
        """The indices of the candidates left by the gates, and what each gate did."""
        field, notes = list(range(len(candidates))), []
        if self.discrepancy is not None:
            ratios = scores["residual_to_noise"]
            fitting = [i for i in field if ratios[i] <= self.discrepancy]
            outside = [f"{candidates[i].name} {ratios[i]:.2f}" for i in field if i not in fitting]
            if fitting and outside:
                field = fitting
                notes.append(f"set aside, residual > {self.discrepancy:g} σ̂²: {', '.join(outside)}")
            elif not fitting:
                lowest = min(ratios[i] for i in field)
                notes.append(
                    f"no candidate within {self.discrepancy:g} σ̂² (lowest {lowest:.2f}): all kept"
                )
        if self.excess is not None:
            ratios = scores["residual_to_noise"]
            best = min(ratios[i] for i in field)
            outside = [i for i in field if ratios[i] - best > self.excess]
            if outside:
                field = [i for i in field if i not in outside]
                what = ", ".join(f"{candidates[i].name} +{ratios[i] - best:.2f}" for i in outside)
                notes.append(f"set aside, residual > best fit + {self.excess:g} σ̂²: {what}")
        for arm in self.prefer:
            members = [i for i in field if candidates[i].arm == arm]
            if members:
                field = members
                notes.append(f"{arm} preferred")
                break
        return field, notes

    def decide(
        self, scores: Mapping[str, Sequence[float]], candidates: Sequence[Candidate]
    ) -> Choice:
        """The choice given every needed criterion's ``scores`` of ``candidates``."""
        if not candidates:
            raise ValueError("no candidates to choose from")
        total = self.combine(scores)
        field, notes = self.field(scores, candidates)
        index = min(field, key=total.__getitem__)
        others = [total[i] for i in field if i != index]
        what = ", ".join(self.criteria)
        if len(self.criteria) > 1:
            what = f"weighted rank sum of {what} (0 = first on every criterion)"
        reason = what + f" lowest ({total[index]:.4g}"
        reason += f"; next {min(others):.4g})" if others else ")"
        reason = "; ".join([*notes, reason])
        return Choice(index, dict(scores), total, reason)

    def choose(self, blurry: torch.Tensor, candidates: Sequence[Candidate]) -> Choice:
        return self.decide(self.scores(blurry, candidates), candidates)
