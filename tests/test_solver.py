import math

import pytest
import torch
from conftest import test_device

from weakdeblur.data import DemoDataset
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import FidelityLoss
from weakdeblur.solver import InputSettings, OptimSettings, Solver
from weakdeblur.stopping import StoppingPolicy
from weakdeblur.types import LossTerm

pytestmark = pytest.mark.device  # solvers on --device (tests/conftest.py)


def small_solver(
    iterations=40, switch_fraction=0.2, terms=(), stopping=None, milestones=(0.4, 0.6, 0.8)
) -> Solver:
    def image_generator(in_channels, out_channels):
        return SkipNetwork(
            in_channels, out_channels, [16] * 3, [16] * 3, [4] * 3, non_local_scales=[2]
        )

    def kernel_generator(kernel_size, code_size):
        return KernelMLP(kernel_size, code_size=code_size, hidden=64)

    return Solver(
        image_generator,
        kernel_generator,
        fidelity=FidelityLoss(switch_fraction),
        optim=OptimSettings(
            iterations=iterations, log_every=10, snapshot_every=20, milestones=milestones
        ),
        inputs=InputSettings(kernel_code_size=32),
        stopping=stopping,
        terms=terms,
        device=test_device(),
    )


@pytest.fixture(scope="module")
def sample():
    source = DemoDataset(size=40, true_kernel_size=5, kernel_size=7, seed=0)
    return source.load(source.names()[0])


def test_tiny_run_lowers_the_loss_and_returns_observed_size(sample):
    result = small_solver(iterations=40, switch_fraction=1.0).run(sample, seed=0)
    assert result.status == "ok"
    losses = [row["fidelity"] for row in result.history]
    assert [row["iteration"] for row in result.history] == [10, 20, 30, 40]
    assert losses[-1] < 0.5 * losses[0]
    assert result.image.shape == sample.blurry.shape
    assert result.kernel.shape == (1, 1, 7, 7)
    assert result.blurred.shape == sample.blurry.shape
    torch.testing.assert_close(result.kernel.sum(), torch.tensor(1.0))


def test_same_seed_same_result(sample):
    first = small_solver(iterations=10).run(sample, seed=5)
    second = small_solver(iterations=10).run(sample, seed=5)
    torch.testing.assert_close(first.image, second.image)
    third = small_solver(iterations=10).run(sample, seed=6)
    assert not torch.allclose(first.image, third.image)


def test_schedule_scales_with_the_budget(sample):
    assert OptimSettings(iterations=5000).milestone_iterations() == [2000, 3000, 4000]
    assert OptimSettings(iterations=1500).milestone_iterations() == [600, 900, 1200]
    result = small_solver(iterations=40, milestones=(0.5,)).run(sample)
    rates = {int(row["iteration"]): row["lr_image"] for row in result.history}
    assert (
        rates[10] == pytest.approx(0.01)
        and rates[20] == pytest.approx(0.005)
        and rates[40] == pytest.approx(0.005)
    )


class ExplodeAfter(LossTerm):
    name = "explode"

    def __init__(self, iteration: int):
        super().__init__()
        self.at = iteration

    def forward(self, state):
        return state.image.sum() * (math.nan if state.iteration >= self.at else 0.0)


def test_nan_loss_fails_the_image_and_keeps_last_finite_iterate(sample):
    result = small_solver(iterations=40, terms=[ExplodeAfter(25)]).run(sample)
    assert result.status == "failed"
    assert "non-finite" in result.message
    assert result.returned_iteration == 20
    assert torch.isfinite(result.image).all()
    assert result.iterations == 30  # detected at the next logging step


class StopAt(StoppingPolicy):
    def __init__(self, iteration):
        self.check_every = 5
        self.at = iteration
        self.seen = []

    def observe(self, check):
        self.seen.append(check.iteration)
        return check.iteration >= self.at


def test_stopping_policy_is_consulted_and_ends_the_run(sample):
    policy = StopAt(15)
    result = small_solver(iterations=40, stopping=policy).run(sample)
    assert policy.seen == [5, 10, 15]
    assert result.iterations == 15 and result.stopped_early and result.returned_iteration == 15
    assert result.history[-1]["iteration"] == 15


class WeakToSupervised(LossTerm):
    name = "weak"

    def forward(self, state):
        return ((state.image - state.supervised) ** 2).mean()


def test_supervisor_is_frozen_and_its_output_reaches_terms_and_result(sample):
    from weakdeblur.supervisors import IdentitySupervisor

    solver = small_solver(iterations=20, terms=[WeakToSupervised()])
    solver.supervisor = IdentitySupervisor().freeze()
    result = solver.run(sample)
    torch.testing.assert_close(result.supervised, sample.blurry)
    assert "weak" in result.history[-1]
    assert not solver.supervisor.training
