r"""Paired comparison of two methods over the same images and seeds.

One run of a deep-prior method on one image is one draw: SelfDeblur's PSNR spans up to 8.5 dB
over four seeds on one Levin crop. Two methods are therefore compared on the same images and
the same seeds, and the unit of evidence is the image:

1. keep the draws (image, seed) that both methods have;
2. per image :math:`i`, average each method over its common seeds:
   :math:`\bar a_i, \bar b_i`, and take the paired difference :math:`d_i = \bar b_i - \bar a_i`;
3. report :math:`\bar d = \frac1n \sum_i d_i` with a percentile bootstrap interval: resample
   the :math:`n` images with replacement, ``resamples`` times, and take the
   :math:`(1 \pm \text{confidence})/2` quantiles of the resampled means (images are the
   independent units; the seeds of one image share its content);
4. count the images where the candidate wins (:math:`d_i > 0`), loses, or ties, and the same
   over single draws.

A difference whose interval contains zero is not a result. The seed spread of each method is
reported too (per image: max − min over its seeds), so that a difference can be read against
it. Nothing here reads files: :mod:`weakdeblur.report` collects the values.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

Draw = tuple[str, int]  # (image, seed)


class PairingError(ValueError):
    """The two methods share no draw, or the settings make no sense: one clear message."""


@dataclass
class ImagePair:
    """One image: each method's mean and spread over the seeds both have."""

    image: str
    seeds: list[int]
    baseline: float
    candidate: float
    baseline_spread: float
    candidate_spread: float

    @property
    def difference(self) -> float:
        return self.candidate - self.baseline


@dataclass
class PairedComparison:
    """The paired difference ``candidate − baseline`` of one metric (see the module)."""

    metric: str
    baseline_name: str
    candidate_name: str
    images: list[ImagePair]
    interval: tuple[float, float]
    confidence: float
    resamples: int
    draw_wins: int
    draw_losses: int
    unpaired: dict[str, int] = field(default_factory=dict)

    @property
    def difference(self) -> float:
        return statistics.fmean(image.difference for image in self.images)

    @property
    def baseline(self) -> float:
        return statistics.fmean(image.baseline for image in self.images)

    @property
    def candidate(self) -> float:
        return statistics.fmean(image.candidate for image in self.images)

    @property
    def draws(self) -> int:
        return sum(len(image.seeds) for image in self.images)

    @property
    def wins(self) -> int:
        return sum(image.difference > 0 for image in self.images)

    @property
    def losses(self) -> int:
        return sum(image.difference < 0 for image in self.images)

    @property
    def ties(self) -> int:
        return len(self.images) - self.wins - self.losses

    def summary(self) -> dict[str, object]:
        """The numbers of the comparison as one plain record (JSON, CSV)."""
        low, high = self.interval
        return {
            "metric": self.metric,
            "baseline": self.baseline_name,
            "candidate": self.candidate_name,
            "images": len(self.images),
            "draws": self.draws,
            "baseline_mean": self.baseline,
            "candidate_mean": self.candidate,
            "difference": self.difference,
            "interval_low": low,
            "interval_high": high,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "draw_wins": self.draw_wins,
            "draw_losses": self.draw_losses,
            "baseline_seed_spread": statistics.fmean(i.baseline_spread for i in self.images),
            "candidate_seed_spread": statistics.fmean(i.candidate_spread for i in self.images),
            "unpaired": dict(self.unpaired),
        }


def bootstrap_interval(
    differences: list[float], resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (resampled with
    replacement, ``resamples`` times, from a generator seeded with ``seed``)."""
    if not differences:
        raise PairingError("no paired values to resample")
    if not 0 < confidence < 1:
        raise PairingError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise PairingError(f"resamples must be >= 1, got {resamples}")
    values = np.asarray(differences, dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def compare(
    baseline: Mapping[Draw, float],
    candidate: Mapping[Draw, float],
    metric: str = "psnr",
    names: tuple[str, str] = ("baseline", "candidate"),
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare ``candidate`` with ``baseline``, each a mapping (image, seed) → value."""
    common = sorted(set(baseline) & set(candidate))
    if not common:
        raise PairingError(
            f"{names[0]} and {names[1]} share no (image, seed): "
            f"{len(baseline)} and {len(candidate)} draws, none in common"
        )
    by_image: dict[str, list[int]] = {}
    for image, draw_seed in common:
        by_image.setdefault(image, []).append(draw_seed)
    images = []
    for image, seeds in sorted(by_image.items()):
        a = [baseline[(image, s)] for s in seeds]
        b = [candidate[(image, s)] for s in seeds]
        images.append(
            ImagePair(
                image,
                seeds,
                statistics.fmean(a),
                statistics.fmean(b),
                max(a) - min(a),
                max(b) - min(b),
            )
        )
    interval = bootstrap_interval(
        [image.difference for image in images], resamples, confidence, seed
    )
    return PairedComparison(
        metric=metric,
        baseline_name=names[0],
        candidate_name=names[1],
        images=images,
        interval=interval,
        confidence=confidence,
        resamples=resamples,
        draw_wins=sum(candidate[d] > baseline[d] for d in common),
        draw_losses=sum(candidate[d] < baseline[d] for d in common),
        unpaired={
            names[0]: len(set(baseline) - set(common)),
            names[1]: len(set(candidate) - set(common)),
        },
    )


def markdown(comparison: PairedComparison) -> list[str]:
    """The comparison as Markdown: a summary line and one row per image."""
    c = comparison
    low, high = c.interval
    unit = " dB" if c.metric == "psnr" else ""
    verdict = (
        "the interval excludes 0"
        if low > 0 or high < 0
        else "the interval contains 0: no difference shown"
    )
    lines = [
        f"**{c.candidate_name}** − **{c.baseline_name}**, {c.metric}: "
        f"{c.difference:+.3f}{unit} (bootstrap {c.confidence:.0%} interval over images "
        f"[{low:+.3f}, {high:+.3f}], {c.resamples} resamples; {verdict}); "
        f"{len(c.images)} images, {c.draws} draws (image × seed); images won / lost / tied "
        f"{c.wins} / {c.losses} / {c.ties}; draws won / lost {c.draw_wins} / {c.draw_losses}.",
        "",
        f"| image | seeds | {c.baseline_name} | {c.candidate_name} | difference "
        f"| seed spread {c.baseline_name} | seed spread {c.candidate_name} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for image in c.images:
        lines.append(
            f"| {image.image} | {len(image.seeds)} | {image.baseline:.3f} | "
            f"{image.candidate:.3f} | {image.difference:+.3f} | {image.baseline_spread:.3f} | "
            f"{image.candidate_spread:.3f} |"
        )
    summary = c.summary()
    lines.append(
        f"| **mean** | {c.draws / len(c.images):.1f} | {c.baseline:.3f} | {c.candidate:.3f} | "
        f"{c.difference:+.3f} | {summary['baseline_seed_spread']:.3f} | "
        f"{summary['candidate_seed_spread']:.3f} |"
    )
    if any(c.unpaired.values()):
        left = ", ".join(f"{name}: {count}" for name, count in c.unpaired.items() if count)
        lines += ["", f"Draws without a partner, left out: {left}."]
    return lines
