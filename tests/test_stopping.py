"""Stopping policies on synthetic statistic sequences, and inside the real solver."""

import math

import pytest
import torch

from weakdeblur.data import DemoDataset
from weakdeblur.data.sample import Sample
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import FidelityLoss
from weakdeblur.solver import InputSettings, OptimSettings, Solver
from weakdeblur.stopping import (
    Check,
    ConsistencyStop,
    ExponentialAverage,
    FixedBudget,
    Iterate,
    OracleBest,
    PolicyError,
    StoppingPolicy,
    WindowedVariance,
)
from weakdeblur.supervisors import IdentitySupervisor, Supervisor

SHAPE = (1, 1, 8, 8)


def check(iteration, value=0.0, budget=1000, image=None, blurred=None, **extra):
    """A fake check whose x and ŷ are constant images of ``value`` (unless given)."""
    image = torch.full(SHAPE, float(value)) if image is None else image
    blurred = torch.full(SHAPE, float(value)) if blurred is None else blurred
    return Check(iteration, budget, image, torch.full((1, 1, 3, 3), 1 / 9), blurred, **extra)


def drive(policy, values, every, budget=1000, start=None):
    """Feed ``values`` at iterations every, 2·every, ...; return the stop iteration or None."""
    policy.start(budget, **(start or {}))
    for index, value in enumerate(values):
        iteration = (index + 1) * every
        if policy.observe(check(iteration, value, budget)):
            return iteration
    return None


# ---------------------------------------------------------------- fixed budget


def test_fixed_budget_never_stops_and_returns_the_last_iterate():
    policy = FixedBudget(check_every=10)
    assert drive(policy, [0.0] * 100, 10) is None
    assert policy.selected() is None and policy.statistics() == {}


# ---------------------------------------------------------------- consistency


def consistency(**settings):
    """Identity g and target x̄ = 0, so E = L1(ŷ, 0) = the constant value of ŷ."""
    defaults = dict(threshold=0.1, consecutive=3, check_every=10, min_fraction=0.0)
    policy = ConsistencyStop(**{**defaults, **settings})
    start = dict(supervisor=IdentitySupervisor(), supervised=torch.zeros(SHAPE))
    return policy, start


ERRORS = [0.5, 0.4, 0.05, 0.3, 0.05, 0.04, 0.03, 0.02, 0.01, 0.01]


def test_consistency_stops_after_n_consecutive_checks_below_the_threshold():
    policy, start = consistency()
    assert drive(policy, ERRORS, 10, start=start) == 70  # counts 0,0,1,0,1,2,3
    assert policy.selected() is None  # the last iterate
    stats = policy.statistics()
    assert stats["stop_consistency"] == pytest.approx(0.03)
    assert stats["stop_consistency_ratio"] == pytest.approx(0.03 / 0.5)
    assert stats["stop_consistency_count"] == 3


def test_consistency_relative_threshold_is_a_fraction_of_the_first_value():
    policy, start = consistency(threshold=0.2, relative=True)  # τ = 0.2 · 0.5 = 0.1
    assert drive(policy, ERRORS, 10, start=start) == 70
    policy, start = consistency(threshold=0.05, relative=True, consecutive=1)  # τ = 0.025
    assert drive(policy, ERRORS, 10, start=start) == 80


def test_consistency_n_one_and_threshold_null():
    policy, start = consistency(consecutive=1)
    assert drive(policy, ERRORS, 10, start=start) == 30
    policy, start = consistency(threshold=None)
    assert drive(policy, ERRORS, 10, start=start) is None  # records only
    assert policy.statistics()["stop_consistency"] == pytest.approx(0.01)


def test_consistency_does_not_count_checks_before_its_minimum():
    # E is below the threshold from the start, but nothing counts before iteration 45 / 20% of 400
    policy, start = consistency(consecutive=2, min_iteration=45)
    assert drive(policy, [0.0] * 20, 10, start=start) == 60
    policy, start = consistency(consecutive=2, min_fraction=0.2)
    assert drive(policy, [0.0] * 40, 10, budget=400, start=start) == 90  # checks 80, 90


@pytest.mark.parametrize("seed", range(5))
def test_consistency_never_stops_before_its_minimum(seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(200, generator=generator).tolist()
    for minimum in (0, 150, 700, 1990):
        for n in (1, 2, 4):
            policy, start = consistency(consecutive=n, threshold=0.5, min_iteration=minimum)
            stop = drive(policy, values, 10, budget=2000, start=start)
            if stop is not None:
                assert stop >= minimum + (n - 1) * 10
                checks = [values[i // 10 - 1] for i in range(stop - (n - 1) * 10, stop + 1, 10)]
                assert all(value <= 0.5 for value in checks)


class Halving(Supervisor):
    def restore(self, images):
        return images / 2


def test_consistency_target_g_of_xbar_and_custom_distance():
    supervised = torch.full(SHAPE, 0.4)
    policy = ConsistencyStop(
        distance=torch.nn.functional.mse_loss, threshold=1.0, target="g_of_xbar", min_fraction=0
    )
    policy.start(100, supervisor=Halving(), supervised=supervised)
    policy.observe(check(100, 0.8))  # g(ŷ) = 0.4, g(x̄) = 0.2 → MSE 0.04
    assert policy.statistics()["stop_consistency"] == pytest.approx(0.04)
    policy = ConsistencyStop(threshold=1.0, target="g_of_y", min_fraction=0)
    policy.start(100, supervisor=Halving(), supervised=supervised)
    policy.observe(check(100, 0.8))  # |0.4 - 0.4|
    assert policy.statistics()["stop_consistency"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="target"):
        ConsistencyStop(target="g_of_z")


def test_consistency_without_a_supervisor_refuses_the_image():
    policy = ConsistencyStop()
    with pytest.raises(PolicyError, match="needs a supervisor"):
        policy.start(100)


# ---------------------------------------------------------------- ES-WMV


WMV_VALUES = [0, 1, 0, 1, 0.5, 0.5, 0.5, 0.6, 0, 1, 0, 1, 0, 1]


def test_wmv_stops_after_patience_without_a_new_minimum_and_returns_the_lowest_variance():
    policy = WindowedVariance(window=3, patience=4, check_every=1)
    # window variances: t=3 .222, 4 .222, 5 .167, 6 .056, 7 0 (minimum), then larger
    assert drive(policy, WMV_VALUES, 1) == 11
    chosen = policy.selected()
    assert chosen.iteration == 7 and torch.all(chosen.image == 0.5)
    assert policy.statistics()["stop_wmv_best_iteration"] == 7
    assert policy.buffer.shape[0] == 3  # memory: the window only


def test_wmv_window_and_patience_are_in_iterations():
    policy = WindowedVariance(window=6, patience=8, check_every=2)  # 3 iterates in the window
    assert drive(policy, WMV_VALUES, 2) == 22
    assert policy.selected().iteration == 14


def test_wmv_keeps_going_while_the_variance_falls():
    policy = WindowedVariance(window=3, patience=2, check_every=1)
    values = [1.0 / (t + 1) for t in range(50)]  # steadily calmer
    assert drive(policy, values, 1) is None
    assert policy.selected().iteration == 50
    with pytest.raises(ValueError, match="two checks"):
        WindowedVariance(window=10, check_every=10)


# ---------------------------------------------------------------- EMA


class Recorder(StoppingPolicy):
    """An inner rule that records what it sees, stops at ``at`` and keeps the iterate ``keep``."""

    name = "recorder"

    def __init__(self, check_every, at=None, keep=None):
        self.check_every, self.at, self.keep = check_every, at, keep

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        self.seen, self.kept = [], None

    def observe(self, check):
        self.seen.append((check.iteration, float(check.image.mean())))
        if check.iteration == self.keep:
            self.kept = Iterate.copy_of(check)
        return check.iteration == self.at

    def selected(self):
        return self.kept


def averages(values, decay):
    result, average = [], None
    for value in values:
        average = value if average is None else decay * average + (1 - decay) * value
        result.append(average)
    return result


def test_ema_returns_the_average_at_the_stop_and_feeds_it_to_the_inner_rule():
    values = [float(2 * t) for t in range(1, 13)]
    inner = Recorder(check_every=2, at=8)
    policy = ExponentialAverage(inner, decay=0.5, check_every=1)
    assert drive(policy, values, 1) == 8
    expected = averages(values, 0.5)
    assert [it for it, _ in inner.seen] == [2, 4, 6, 8]
    assert [mean for _, mean in inner.seen] == pytest.approx(
        [expected[i - 1] for i in (2, 4, 6, 8)]
    )
    chosen = policy.selected()
    assert chosen.iteration == 8
    assert float(chosen.image.mean()) == pytest.approx(expected[7])
    assert float(chosen.blurred.mean()) == pytest.approx(expected[7])


def test_ema_returns_the_inner_rules_choice_of_average():
    values = [float(t) for t in range(1, 21)]
    policy = ExponentialAverage(Recorder(check_every=4, keep=8), decay=0.9, check_every=2)
    assert drive(policy, values[1::2], 2) is None  # observed at 2, 4, ..., 20
    chosen = policy.selected()
    assert chosen.iteration == 8
    assert float(chosen.image.mean()) == pytest.approx(averages(values[1::2], 0.9)[3])


def test_ema_default_inner_is_the_fixed_budget_and_cadences_must_agree():
    policy = ExponentialAverage(decay=0.0)
    assert drive(policy, [1.0, 2.0, 3.0], 1) is None
    assert float(policy.selected().image.mean()) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="multiple"):
        ExponentialAverage(WindowedVariance(window=3, check_every=1), check_every=2)


def test_ema_over_wmv_decides_on_averages():
    policy = ExponentialAverage(WindowedVariance(window=3, patience=4), decay=0.0)
    assert drive(policy, WMV_VALUES, 1) == 11  # decay 0: the average is the iterate itself
    assert policy.selected().iteration == 7 and policy.name == "ema_wmv"


# ---------------------------------------------------------------- oracle


def noisy_images(sharp, amplitudes):
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(sharp.shape, generator=generator)
    return [(sharp + a * noise).clamp(0, 1) for a in amplitudes]


def test_oracle_returns_the_best_psnr_iterate_and_never_stops():
    sharp = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    sample = Sample("gt", sharp.clone(), (3, 3), sharp=sharp)
    amplitudes = [0.3, 0.2, 0.1, 0.02, 0.05, 0.2]
    policy = OracleBest(check_every=10, cut=0, max_shift=0)
    policy.start(60, sample=sample)
    for index, image in enumerate(noisy_images(sharp, amplitudes)):
        assert not policy.observe(check((index + 1) * 10, image=image))
    assert policy.selected().iteration == 40
    stats = policy.statistics()
    assert stats["stop_oracle_best_iteration"] == 40
    assert stats["stop_oracle_best_psnr"] > 30


def test_oracle_refuses_images_without_ground_truth():
    sample = Sample("nogt", torch.rand(1, 1, 32, 32), (3, 3))
    with pytest.raises(PolicyError, match="ground truth"):
        OracleBest().start(100, sample=sample)


# ---------------------------------------------------------------- inside the solver


def tiny_solver(stopping, supervisor=None, iterations=40):
    def image_generator(in_channels, out_channels):
        return SkipNetwork(
            in_channels, out_channels, [8] * 2, [8] * 2, [2] * 2, non_local_scales=[]
        )

    def kernel_generator(kernel_size, code_size):
        return KernelMLP(kernel_size, code_size=code_size, hidden=32)

    return Solver(
        image_generator,
        kernel_generator,
        fidelity=FidelityLoss(0.2),
        optim=OptimSettings(iterations=iterations, log_every=10, snapshot_every=0),
        inputs=InputSettings(kernel_code_size=16),
        stopping=stopping,
        supervisor=supervisor,
        device="cpu",
    )


@pytest.fixture(scope="module")
def sample():
    source = DemoDataset(size=32, true_kernel_size=5, kernel_size=7, seed=0)
    return source.load(source.names()[0])


def test_solver_consistency_stops_at_minimum_plus_n_minus_one_checks(sample):
    # identity g: E = L1(ŷ, y) ≤ 1 always, so with t = 1 the rule fires as soon as it may
    policy = ConsistencyStop(threshold=1.0, consecutive=2, check_every=5, min_iteration=12)
    result = tiny_solver(policy, IdentitySupervisor()).run(sample)
    assert result.status == "ok" and result.stopped_early
    assert result.iterations == 20 and result.returned_iteration == 20  # checks 15, 20
    assert result.history[-1]["iteration"] == 20
    assert result.history[-1]["stop_consistency_count"] == 2
    assert 0 < result.history[-1]["stop_consistency"] < 1


def test_solver_consistency_with_threshold_zero_runs_the_budget(sample):
    policy = ConsistencyStop(threshold=0.0, consecutive=1, check_every=10, min_fraction=0)
    result = tiny_solver(policy, IdentitySupervisor(), iterations=30).run(sample)
    assert result.iterations == 30 and not result.stopped_early
    assert [row["iteration"] for row in result.history] == [10, 20, 30]
    assert all(row["stop_consistency"] > 0 for row in result.history)


def test_solver_fails_the_image_when_the_policy_refuses_it(sample):
    result = tiny_solver(ConsistencyStop()).run(sample)
    assert result.status == "failed" and "needs a supervisor" in result.message
    assert result.iterations == 0 and result.history == []


def test_solver_returns_wmv_choice_and_ema_average(sample):
    wmv = WindowedVariance(window=4, patience=6, check_every=2)
    result = tiny_solver(wmv, iterations=40).run(sample)
    best = wmv.selected()
    assert result.returned_iteration == best.iteration
    torch.testing.assert_close(result.image, best.image)
    if result.stopped_early:
        assert result.iterations - best.iteration >= 6
    ema = ExponentialAverage(decay=0.9)
    result = tiny_solver(ema, iterations=20).run(sample)
    assert result.returned_iteration == 20 and not math.isnan(float(result.image.mean()))
    torch.testing.assert_close(result.image, ema.average.image)
