r"""Stopping policies: when to end an image's optimisation and which iterate to return.

The solver calls :meth:`StoppingPolicy.start` once per image (budget, sample,
supervisor g and :math:`\bar x = g(y)`), then :meth:`StoppingPolicy.observe`
every ``check_every`` iterations with a :class:`Check`; the policy answers
whether to stop, and :meth:`StoppingPolicy.selected` names the iterate to
return (``None``: the last one). :meth:`StoppingPolicy.statistics` is recorded
in the history at logging steps that are checks (keys ``stop_*``).

Policies keep only the iterates they need: :class:`FixedBudget` and
:class:`ConsistencyStop` none, :class:`WindowedVariance` its window plus the
best iterate, :class:`ExponentialAverage` one running average (plus what its
inner rule keeps), :class:`OracleBest` the best iterate; :class:`PolicyPanel` what its
members keep plus one iterate per member that has decided.

A policy that cannot work on an image (no supervisor, no ground truth) raises
:class:`PolicyError` from :meth:`~StoppingPolicy.start`; the solver then marks
that image failed with the message, before the first iteration.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from weakdeblur.data.sample import Sample
    from weakdeblur.supervisors.base import Supervisor


class PolicyError(ValueError):
    """A stopping policy cannot be used on this image (one clear message)."""


@dataclass
class Check:
    """What the solver knows at a check (tensors are detached; clone before keeping them)."""

    iteration: int  # completed iterations
    budget: int
    image: torch.Tensor  # x at the observation's size
    kernel: torch.Tensor
    blurred: torch.Tensor  # ŷ = k ⋆ x
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    supervisor: Supervisor | None = None  # g, when the run has one
    supervised: torch.Tensor | None = None  # x̄ = g(y)


@dataclass
class Iterate:
    iteration: int
    image: torch.Tensor
    kernel: torch.Tensor
    blurred: torch.Tensor

    @classmethod
    def copy_of(cls, check: Check) -> Iterate:
        return cls(
            check.iteration, check.image.clone(), check.kernel.clone(), check.blurred.clone()
        )


class StoppingPolicy:
    """Interface. The default implementation never stops and returns the last iterate."""

    name: str = "policy"
    check_every: int = 100

    def start(
        self,
        budget: int,
        sample: Sample | None = None,
        supervisor: Supervisor | None = None,
        supervised: torch.Tensor | None = None,
    ) -> None:
        """Called once per image before the first iteration; resets all state.

        Raises:
            PolicyError: the policy cannot work on this image.
        """

    def observe(self, check: Check) -> bool:
        """Return ``True`` to stop after this iteration."""
        return False

    def selected(self) -> Iterate | None:
        """The iterate to return instead of the last one, if any."""
        return None

    def statistics(self) -> dict[str, float]:
        """Scalars describing the policy's state at the latest check (keys ``stop_*``)."""
        return {}


class FixedBudget(StoppingPolicy):
    """The paper's rule: run the whole budget, return the last iterate."""

    name = "fixed"

    def __init__(self, check_every: int = 100):
        self.check_every = check_every


def start_policy(
    policy: StoppingPolicy,
    budget: int,
    sample: Sample | None,
    supervisor: Supervisor | None,
    supervised: torch.Tensor | None,
    trust_supervisor: bool = True,
) -> StoppingPolicy:
    """``policy`` started on ``sample``, or the policy that stands in for it.

    With ``trust_supervisor=False`` (a reliability gate distrusts g on this image) the policy
    starts as if the run had no supervisor; one that needs g (Eq. 7) is replaced by the fixed
    budget at its check cadence. Errors that do not come from g's absence still raise.

    Raises:
        PolicyError: the policy cannot work on this image.
    """
    if trust_supervisor:
        policy.start(budget, sample, supervisor, supervised)
        return policy
    try:
        policy.start(budget, sample, None, None)
        return policy
    except PolicyError:
        policy.start(budget, sample, supervisor, supervised)  # raises unless g was the need
    fallback = FixedBudget(check_every=policy.check_every)
    fallback.start(budget, sample)
    return fallback


def _positive(name: str, value: int) -> int:
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


class ConsistencyStop(StoppingPolicy):
    r"""The proposal's Eq. 7: stop once the consistency error is small for ``n`` checks.

    At every check (every :math:`m` = ``check_every`` iterations)

    .. math::

        E_t = E\big(g(\hat y_t),\ \text{target}\big), \qquad
        \hat y_t = k_t \star x_t, \qquad
        \text{target} = \begin{cases} \bar x = g(y) & \texttt{g\_of\_y} \\
                                      g(\bar x) & \texttt{g\_of\_xbar} \end{cases}

    and the run stops at the first check :math:`t \ge t_{\min}` such that
    :math:`E_s \le \tau` for the last ``consecutive`` (:math:`n`) checks
    :math:`s \ge t_{\min}`, with :math:`\tau = t` (``relative=False``) or
    :math:`\tau = t \cdot E_{t_1}`, :math:`t_1` the first check
    (``relative=True``). Checks before :math:`t_{\min} = \max(\texttt{min\_iteration},
    \lceil \texttt{min\_fraction} \cdot T \rceil)` do not count; the budget
    :math:`T` is the maximum. The last iterate is returned.

    ``threshold=None`` never stops but still records :math:`E_t` (calibration runs,
    see :mod:`weakdeblur.calibrate`). :math:`g(\hat y)` costs one forward pass of g,
    without gradients, per check only.

    Args:
        distance: :math:`E(a, b)` returning a scalar tensor (default L1).
        threshold: :math:`t`; ``None`` records only.
        relative: :math:`t` is a fraction of the first check's value.
        consecutive: :math:`n`.
        check_every: :math:`m`.
        min_iteration, min_fraction: :math:`t_{\min}` (default: the fidelity switch at 20%).
        target: ``g_of_y`` or ``g_of_xbar``.
    """

    name = "consistency"
    TARGETS = ("g_of_y", "g_of_xbar")

    def __init__(
        self,
        distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        threshold: float | None = 0.01,
        relative: bool = False,
        consecutive: int = 3,
        check_every: int = 100,
        min_iteration: int = 0,
        min_fraction: float = 0.2,
        target: str = "g_of_y",
    ):
        if target not in self.TARGETS:
            raise ValueError(f"target must be one of {self.TARGETS}, got {target!r}")
        if threshold is not None and threshold < 0:
            raise ValueError(f"threshold must be non-negative or null, got {threshold}")
        self.distance = distance if distance is not None else F.l1_loss
        self.threshold = threshold
        self.relative = relative
        self.consecutive = _positive("consecutive", consecutive)
        self.check_every = _positive("check_every", check_every)
        self.min_iteration = int(min_iteration)
        self.min_fraction = float(min_fraction)
        self.target_kind = target
        self.supervisor: Supervisor | None = None
        self.target: torch.Tensor | None = None
        self._reset(0)

    def _reset(self, first_allowed: int) -> None:
        self.first_allowed = first_allowed
        self.value: float | None = None
        self.first: float | None = None
        self.count = 0

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        if supervisor is None or supervised is None:
            name = f" ({sample.name})" if sample is not None else ""
            raise PolicyError(
                f"stopping=consistency needs a supervisor g to compute E(g(ŷ), target){name}; "
                "choose one with supervisor=... or use another stopping policy (e.g. stopping=fixed)"
            )
        self.supervisor = supervisor
        with torch.no_grad():
            self.target = (
                supervised if self.target_kind == "g_of_y" else supervisor(supervised)
            ).detach()
        if isinstance(self.distance, nn.Module):
            self.distance.to(supervised.device)
        self._reset(max(self.min_iteration, math.ceil(self.min_fraction * budget)))

    def error(self, blurred: torch.Tensor) -> float:
        """:math:`E(g(\\hat y), \\text{target})` for one ŷ."""
        assert self.supervisor is not None and self.target is not None, "start() first"
        with torch.no_grad():
            return float(self.distance(self.supervisor(blurred), self.target))

    def tolerance(self) -> float | None:
        """:math:`\\tau`, once known."""
        if self.threshold is None:
            return None
        if not self.relative:
            return self.threshold
        return None if self.first is None else self.threshold * self.first

    def observe(self, check: Check) -> bool:
        self.value = self.error(check.blurred)
        if self.first is None:
            self.first = self.value
        tolerance = self.tolerance()
        if tolerance is None or check.iteration < self.first_allowed:
            return False
        self.count = self.count + 1 if self.value <= tolerance else 0
        return self.count >= self.consecutive

    def statistics(self):
        if self.value is None:
            return {}
        ratio = self.value / self.first if self.first else math.nan
        return {
            "stop_consistency": self.value,
            "stop_consistency_ratio": ratio,
            "stop_consistency_count": float(self.count),
        }


class WindowedVariance(StoppingPolicy):
    r"""ES-WMV (Wang et al., "Early stopping for deep image prior"): windowed moving variance.

    Over the last :math:`W` = ``window`` iterations, observed every ``check_every``
    (so :math:`w = W / \texttt{check\_every}` iterates are kept in a ring buffer),

    .. math::

        \mathrm{VAR}_t = \frac{1}{w} \sum_{i=0}^{w-1}
            \frac{1}{N}\big\|x_{t-i\,c} - \mu_t\big\|_2^2, \qquad
        \mu_t = \frac{1}{w} \sum_{i=0}^{w-1} x_{t-i\,c}

    (the paper's variance divided by the number of pixels :math:`N`; same
    minimiser). Every time :math:`\mathrm{VAR}_t` reaches a new minimum the current
    iterate is kept; the run stops at the first check with no new minimum for
    ``patience`` iterations and returns the kept (lowest-variance) iterate.
    """

    name = "wmv"

    def __init__(self, window: int = 100, patience: int = 1000, check_every: int = 1):
        self.check_every = _positive("check_every", check_every)
        self.window = _positive("window", window)
        self.patience = _positive("patience", patience)
        self.size = self.window // self.check_every
        if self.size < 2:
            raise ValueError(
                f"window ({window}) must span at least two checks (check_every {check_every})"
            )
        self.start(0)

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        self.buffer: torch.Tensor | None = None
        self.filled = 0
        self.position = 0
        self.variance: float | None = None
        self.best_variance = math.inf
        self.best: Iterate | None = None

    def observe(self, check: Check) -> bool:
        image = check.image
        if self.buffer is None:
            self.buffer = image.new_empty((self.size, *image.shape))
        self.buffer[self.position].copy_(image)
        self.position = (self.position + 1) % self.size
        self.filled = min(self.filled + 1, self.size)
        if self.filled < self.size:
            return False
        self.variance = float(self.buffer.var(dim=0, correction=0).mean())
        if self.variance < self.best_variance:
            self.best_variance = self.variance
            self.best = Iterate.copy_of(check)
        assert self.best is not None
        return check.iteration - self.best.iteration >= self.patience

    def selected(self):
        return self.best

    def statistics(self):
        if self.variance is None:
            return {}
        assert self.best is not None
        return {
            "stop_wmv_variance": self.variance,
            "stop_wmv_best_iteration": float(self.best.iteration),
        }


class ExponentialAverage(StoppingPolicy):
    r"""An exponential moving average of the outputs, around any other rule.

    Every ``check_every`` iterations

    .. math::

        \bar x_t = \beta\, \bar x_{t-c} + (1 - \beta)\, x_t \quad (\bar x = x \text{ at the first update}),

    likewise for :math:`k` and :math:`\hat y`, with :math:`\beta` = ``decay`` per
    update (0.99 per iteration, as in Deep Image Prior's ``exp_weight``). The
    ``inner`` rule (default: the fixed budget) is consulted at its own
    ``check_every`` and sees the *averaged* iterate in its :class:`Check`, so it
    decides on, and returns, averages: with ``inner=wmv`` the lowest-variance
    average, with ``inner=oracle`` the best average. Without a selection by the
    inner rule, the average at the stop is returned.
    """

    name = "ema"

    def __init__(
        self, inner: StoppingPolicy | None = None, decay: float = 0.99, check_every: int = 1
    ):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.check_every = _positive("check_every", check_every)
        self.inner = inner if inner is not None else FixedBudget(check_every=100)
        if self.inner.check_every % self.check_every:
            raise ValueError(
                f"the inner rule's check_every ({self.inner.check_every}) must be a multiple "
                f"of the average's check_every ({self.check_every})"
            )
        self.decay = decay
        self.name = f"ema_{self.inner.name}"
        self.average: Iterate | None = None
        self.inner_checked = False

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        self.average = None
        self.inner_checked = False
        self.inner.start(budget, sample, supervisor, supervised)

    def observe(self, check: Check) -> bool:
        if self.average is None:
            self.average = Iterate.copy_of(check)
        else:
            weight = 1.0 - self.decay
            self.average.image.lerp_(check.image, weight)
            self.average.kernel.lerp_(check.kernel, weight)
            self.average.blurred.lerp_(check.blurred, weight)
            self.average.iteration = check.iteration
        self.inner_checked = check.iteration % self.inner.check_every == 0
        if not self.inner_checked:
            return False
        averaged = replace(
            check,
            image=self.average.image,
            kernel=self.average.kernel,
            blurred=self.average.blurred,
        )
        return self.inner.observe(averaged)

    def selected(self):
        chosen = self.inner.selected()
        if chosen is not None or self.average is None:
            return chosen
        return Iterate(
            self.average.iteration,
            self.average.image.clone(),
            self.average.kernel.clone(),
            self.average.blurred.clone(),
        )

    def statistics(self):
        return self.inner.statistics() if self.inner_checked else {}


class OracleBest(StoppingPolicy):
    """Analysis only: run the whole budget and return the iterate with the best PSNR
    against the ground truth (scored as :class:`weakdeblur.evaluation.Evaluator` scores
    the returned image: Levin alignment, ``cut``, ``max_shift``). Refuses images
    without ground truth. With ``check_every`` equal to the logging cadence, its
    detection gap is zero by construction."""

    name = "oracle"

    def __init__(self, check_every: int = 100, cut: int = 15, max_shift: int = 10):
        from weakdeblur.evaluation import Evaluator
        from weakdeblur.metrics import LPIPSMetric

        self.check_every = _positive("check_every", check_every)
        self.evaluator = Evaluator(cut=cut, max_shift=max_shift, lpips=LPIPSMetric(False))
        self.sharp: torch.Tensor | None = None
        self.start(0)

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        self.best: Iterate | None = None
        self.best_psnr = -math.inf
        self.psnr: float | None = None
        self.sharp = None
        if sample is None:
            return  # constructed without an image (config checks)
        if sample.sharp is None:
            raise PolicyError(
                f"stopping=oracle needs ground truth and {sample.name} has none "
                "(the oracle is for analysis on benchmark images only)"
            )
        self.sharp = sample.sharp.float().cpu()

    def observe(self, check: Check) -> bool:
        if self.sharp is None:
            raise PolicyError("stopping=oracle needs ground truth: start() was given no sample")
        scores = self.evaluator.image_scores(check.image.float().cpu(), self.sharp, False)
        self.psnr = scores["psnr"]
        if self.psnr > self.best_psnr:
            self.best_psnr = self.psnr
            self.best = Iterate.copy_of(check)
        return False

    def selected(self):
        return self.best

    def statistics(self):
        if self.best is None:
            return {}
        return {
            "stop_oracle_best_psnr": self.best_psnr,
            "stop_oracle_best_iteration": float(self.best.iteration),
        }


@dataclass
class Decision:
    """What one rule of a :class:`PolicyPanel` would have done on this image."""

    stop_iteration: int  # the iteration it asked to stop at (the budget if it never did)
    stopped_early: bool
    iterate: Iterate  # what it would have returned


class PolicyPanel(StoppingPolicy):
    r"""Several stopping rules observing one optimisation, each as if it ran alone.

    A stopping rule does not change the optimisation before it stops, so on one
    run to the budget :math:`T` every member :math:`p` sees exactly the checks it
    would see alone, at its own ``check_every``. When :math:`p` first asks to stop
    at :math:`t_p` its selected iterate (or the current one) is copied and it stops
    observing; members that never stop decide at the last check. The panel itself
    never stops before every member has decided, and returns the last iterate
    (the fixed budget's answer), so one run yields, for every rule,
    :math:`t_p`, its returned image, and from the history the detection gap —
    the comparison of stopping rules at the cost of the longest one.

    Its ``check_every`` is the greatest common divisor of the members'. Members
    that refuse the image (:class:`PolicyError`, e.g. a consistency rule without
    a supervisor) are left out and listed in :attr:`unavailable`. Statistics keep
    the members' ``stop_*`` names; a name already used by an earlier member is
    prefixed with the member's name (``stop_<member>__...``).

    Args:
        members: rule name → :class:`StoppingPolicy` (Hydra passes a mapping).
    """

    name = "panel"

    def __init__(self, members: dict[str, StoppingPolicy]):
        if not members:
            raise ValueError("a stopping panel needs at least one member")
        self.members = dict(members)
        self.check_every = math.gcd(*(member.check_every for member in self.members.values()))
        self._reported: set[str] = set()  # left-out rules already logged (once per run)
        self.start(0)

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        self.budget = budget
        self.decisions_made: dict[str, Decision] = {}
        self.unavailable: dict[str, str] = {}
        self.last: Check | None = None
        self._statistics: dict[str, float] = {}
        if sample is None and budget == 0:
            return  # constructed without an image (config checks)
        for name, member in self.members.items():
            try:
                member.start(budget, sample, supervisor, supervised)
            except PolicyError as error:
                self.unavailable[name] = str(error)
        for name, reason in self.unavailable.items():
            if name not in self._reported:
                self._reported.add(name)
                log.warning("stopping panel: rule %s left out: %s", name, reason)
        if len(self.unavailable) == len(self.members):
            raise PolicyError(
                "no rule of the stopping panel can run on this image: "
                + "; ".join(self.unavailable.values())
            )

    def active(self) -> list[str]:
        return [
            name
            for name in self.members
            if name not in self.unavailable and name not in self.decisions_made
        ]

    def observe(self, check: Check) -> bool:
        self.last = check
        self._statistics = {}
        final = check.iteration >= check.budget
        for name in self.active():
            member = self.members[name]
            stop = False
            if check.iteration % member.check_every == 0:
                stop = member.observe(check)
                for key, value in member.statistics().items():
                    if key in self._statistics:
                        key = f"stop_{name}__{key.removeprefix('stop_')}"
                    self._statistics[key] = value
            if stop or final:
                self._decide(name, check, stopped_early=stop and not final)
        return not self.active()

    def _decide(self, name: str, check: Check, stopped_early: bool) -> None:
        chosen = self.members[name].selected()
        self.decisions_made[name] = Decision(
            check.iteration,
            stopped_early,
            chosen if chosen is not None else Iterate.copy_of(check),
        )

    def decisions(self) -> dict[str, Decision]:
        """Every available member's decision; undecided members decide on the last check."""
        if self.last is not None:
            for name in self.active():
                self._decide(name, self.last, stopped_early=False)
        return dict(self.decisions_made)

    def statistics(self):
        return dict(self._statistics)


class PrunedStop(StoppingPolicy):
    """``inner``'s rule, and a ``judge`` asked at each of the ``rungs`` (completed iterations)
    whether to give the run up (successive halving of a portfolio's candidates,
    :mod:`weakdeblur.runtime.portfolio`).

    Checks come every ``gcd(inner.check_every, *rungs)`` iterations; ``inner`` observes only
    on its own cadence, so that its decisions are the ones it takes alone. A run the judge
    gives up stops there (``pruned_at``) and returns its last iterate, or ``inner``'s choice.
    """

    def __init__(
        self,
        inner: StoppingPolicy,
        rungs: Sequence[int],
        judge: Callable[[Check], bool],
    ):
        self.inner, self.judge = inner, judge
        self.rungs = sorted({int(rung) for rung in rungs if int(rung) > 0})
        self.name = inner.name
        self.check_every = math.gcd(inner.check_every, *self.rungs)
        self.pruned_at: int | None = None

    def start(self, budget, sample=None, supervisor=None, supervised=None) -> None:
        self.inner.start(budget, sample, supervisor, supervised)
        self.pruned_at = None

    def observe(self, check: Check) -> bool:
        stop = check.iteration % self.inner.check_every == 0 and self.inner.observe(check)
        if not stop and check.iteration in self.rungs and self.judge(check):
            self.pruned_at = check.iteration
            return True
        return stop

    def selected(self) -> Iterate | None:
        return self.inner.selected()

    def statistics(self) -> dict[str, float]:
        return self.inner.statistics()
