"""Batched multi-image optimisation equals one-at-a-time runs of the same seeds."""

import time
from functools import partial

import pytest
import torch
from conftest import test_device

from weakdeblur.batched import BatchedSolver, group_by_size, network_signature, stack_networks
from weakdeblur.data.sample import Sample
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.kernel_start import KernelWarmStart
from weakdeblur.losses import FidelityLoss
from weakdeblur.solver import InputSettings, OptimSettings, Solver
from weakdeblur.stopping import FixedBudget, StoppingPolicy
from weakdeblur.supervisors.base import Supervisor

pytestmark = pytest.mark.device  # solvers on --device (tests/conftest.py)

SMALL = dict(
    channels_down=[16] * 3, channels_up=[16] * 3, channels_skip=[4] * 3, non_local_scales=[2]
)
# Runs are compared in float64 (the float64 fixture): in float32, Adam turns round-off in
# near-zero gradients (conv biases before a BatchNorm have exactly zero gradient in exact
# arithmetic) into lr-sized steps, so two float32 runs that differ only in summation order
# (grouped vs plain convolution, or 1 vs 2 threads) drift apart by ~1e-2 within 16 iterations.
# In float64 the batched images equal the sequential ones to float32 resolution.
TOLERANCE = dict(atol=1e-6, rtol=0)


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def solver(iterations: int = 8, stopping=None, kernel_start=None) -> Solver:
    return Solver(
        partial(SkipNetwork, **SMALL),
        partial(KernelMLP, hidden=64),
        fidelity=FidelityLoss(0.25),  # MSE, then 1 - SSIM: both data terms are exercised
        optim=OptimSettings(iterations=iterations, log_every=2, snapshot_every=0),
        inputs=InputSettings(kernel_code_size=32),
        stopping=stopping,
        device=test_device(),
        kernel_start=kernel_start,
    )


def samples(count: int, size: int = 32, kernel: int = 7) -> list[Sample]:
    generator = torch.Generator().manual_seed(123)
    return [
        Sample(
            f"img{i}",
            torch.rand(1, 1, size, size, generator=generator).to(torch.get_default_dtype()),
            (kernel, kernel),
        )
        for i in range(count)
    ]


def test_stacked_network_equals_the_single_networks():
    torch.manual_seed(0)
    nets = [SkipNetwork(**SMALL) for _ in range(3)]
    codes = torch.rand(3, 8, 38, 38)
    stacked = stack_networks(nets)
    single = torch.cat([net(code[None]) for net, code in zip(nets, codes, strict=True)])
    torch.testing.assert_close(stacked(codes), single, atol=1e-5, rtol=0)
    mlps = [KernelMLP(7, code_size=32, hidden=64) for _ in range(3)]
    kcodes = torch.rand(3, 32)
    expected = torch.cat([mlp(code) for mlp, code in zip(mlps, kcodes, strict=True)])
    torch.testing.assert_close(stack_networks(mlps)(kcodes), expected, atol=1e-6, rtol=0)
    # per-image BatchNorm: changing image 0's code leaves image 1's output unchanged
    changed = codes.clone()
    changed[0] += 1.0
    torch.testing.assert_close(stacked(changed)[1], stacked(codes)[1], atol=1e-6, rtol=0)


def test_first_forward_pass_agrees_in_float32():
    """One iteration (the returned x is the first forward pass): initialisation, codes and
    noise per image, and the grouped layers, without Adam's amplification."""
    images, seeds = samples(2), [0, 1]
    sequential = [
        solver(1).run(sample, seed=seed) for sample, seed in zip(images, seeds, strict=True)
    ]
    batched = BatchedSolver(solver(1)).run(images, seeds)
    for alone, together in zip(sequential, batched, strict=True):
        torch.testing.assert_close(together.image, alone.image, atol=1e-5, rtol=0)


class WarmStartOnABox(KernelWarmStart):
    """The warm start with a fixed k̄ (a 3x3 box), so no supervisor is needed."""

    def target(self, sample, supervisor, size):
        box = torch.zeros(size)
        box[size[0] // 2 - 1 : size[0] // 2 + 2, size[1] // 2 - 1 : size[1] // 2 + 2] = 1 / 9
        return box


def test_the_warm_start_applies_to_each_image_of_a_batch():
    images, seeds = samples(2), [0, 1]
    warm = WarmStartOnABox(steps=200, lr=1e-2)
    sequential = [
        solver(1, kernel_start=warm).run(sample, seed=seed)
        for sample, seed in zip(images, seeds, strict=True)
    ]
    batched = BatchedSolver(solver(1, kernel_start=warm)).run(images, seeds)
    box = warm.target(None, None, (7, 7))
    for alone, together in zip(sequential, batched, strict=True):
        # one iteration returns the first forward pass: the warm-started kernel
        assert float((alone.kernel.reshape(7, 7) - box).norm()) < 0.1 * float(box.norm())
        torch.testing.assert_close(together.kernel, alone.kernel, atol=1e-5, rtol=0)
        torch.testing.assert_close(together.image, alone.image, atol=1e-5, rtol=0)


def test_batched_equals_sequential_for_the_same_seeds(float64):
    images, seeds = samples(3), [0, 1, 5]
    sequential = [
        solver().run(sample, seed=seed) for sample, seed in zip(images, seeds, strict=True)
    ]
    logged: list[tuple[int, int]] = []
    batched = BatchedSolver(solver()).run(
        images, seeds, on_log=lambda index, record: logged.append((index, record.iteration))
    )
    for alone, together in zip(sequential, batched, strict=True):
        assert together.name == alone.name and together.status == "ok"
        assert together.iterations == alone.iterations == 8
        torch.testing.assert_close(together.image, alone.image, **TOLERANCE)
        torch.testing.assert_close(together.kernel, alone.kernel, atol=1e-5, rtol=0)
        assert [row["iteration"] for row in together.history] == [2, 4, 6, 8]
        for a, b in zip(alone.history, together.history, strict=True):
            assert a["loss"] == pytest.approx(b["loss"], abs=1e-9)
    assert sorted(logged) == [(i, it) for i in range(3) for it in (2, 4, 6, 8)]
    # different seeds give different images: the comparison above is not vacuous
    assert (batched[0].image - batched[1].image).abs().max() > 1e-2


class StopAt(StoppingPolicy):
    """Stops img0 at iteration 4 and lets the others run to the budget."""

    def __init__(self):
        self.check_every = 2

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        self.at = 4 if sample.name == "img0" else budget

    def observe(self, check):
        return check.iteration >= self.at


def test_a_stopped_image_keeps_its_iterate_and_the_others_go_on(float64):
    images = samples(2)
    batched = BatchedSolver(solver(stopping=StopAt())).run(images, [3, 4])
    alone = solver(stopping=StopAt()).run(images[0], seed=3)
    assert batched[0].iterations == alone.iterations == 4 and batched[0].stopped_early
    assert batched[1].iterations == 8 and not batched[1].stopped_early
    torch.testing.assert_close(batched[0].image, alone.image, **TOLERANCE)
    later = solver().run(images[1], seed=4)
    torch.testing.assert_close(batched[1].image, later.image, **TOLERANCE)


def test_grouping_by_image_and_kernel_size():
    mixed = samples(3) + samples(2, kernel=9) + samples(1, size=40)
    assert group_by_size(mixed, 2) == [[0, 1], [2], [3, 4], [5]]
    with pytest.raises(ValueError, match="one image size"):
        BatchedSolver(solver()).run(mixed[2:4], 0)


def test_each_image_may_bring_its_own_solver(float64):
    """solvers=[...]: each image runs with its own stopping rule (and losses), as alone; the
    shared settings come from the images' solvers, the rule that observed each image comes
    back with its result, and each image is charged its share of the batch's time."""
    images = samples(2)
    own = [solver(6, stopping=StopAt()), solver(6)]
    started = time.perf_counter()
    batched = BatchedSolver(solver()).run(images, [3, 4], solvers=own)
    wall = time.perf_counter() - started
    alone = [s.run(image, seed=seed) for s, image, seed in zip(own, images, [3, 4], strict=True)]
    assert [r.iterations for r in batched] == [r.iterations for r in alone] == [4, 6]
    for together, single in zip(batched, alone, strict=True):
        torch.testing.assert_close(together.image, single.image, **TOLERANCE)
    assert isinstance(batched[0].policy, StopAt) and batched[0].policy is not own[0].stopping
    assert batched[0].policy.at == 4  # started on its image
    assert isinstance(batched[1].policy, FixedBudget)
    assert sum(r.seconds for r in batched) <= wall
    with pytest.raises(ValueError, match="optim settings differ"):
        BatchedSolver(solver()).run(images, 0, solvers=[solver(6), solver(8)])


def test_networks_that_differ_beyond_their_weights_are_not_stacked():
    """Same parameters, another forward pass (nearest instead of bilinear upsampling): the
    stacked network would run the first one's layers, so it is refused."""
    nets = [
        SkipNetwork(in_channels=8, out_channels=1, **SMALL, upsample_mode=mode)
        for mode in ("bilinear", "nearest")
    ]
    assert [tuple(p.shape) for p in nets[0].parameters()] == [
        tuple(p.shape) for p in nets[1].parameters()
    ]
    assert network_signature(nets[0]) != network_signature(nets[1])
    with pytest.raises(ValueError, match="one architecture"):
        stack_networks(nets)
    same = SkipNetwork(in_channels=8, out_channels=1, **SMALL)
    assert network_signature(same) == network_signature(nets[0])


class PerImage(Supervisor):
    """A supervisor whose state is the image it was last prepared for (as the map g's)."""

    def prepare(self, sample):
        self.current = sample.name

    def restore(self, images):
        return images


class SeesItsOwnImage(StoppingPolicy):
    """Records, at every check, whether g was prepared for this rule's own image."""

    check_every = 2

    def start(self, budget, sample=None, supervisor=None, supervised=None):
        self.name, self.seen = sample.name, []

    def observe(self, check):
        self.seen.append(check.supervisor.current == self.name)
        return False


def test_the_stopping_rule_sees_g_prepared_for_its_own_image():
    images = samples(2)
    run = Solver(
        partial(SkipNetwork, **SMALL),
        partial(KernelMLP, hidden=64),
        optim=OptimSettings(iterations=4, log_every=2, snapshot_every=0),
        inputs=InputSettings(kernel_code_size=32),
        stopping=SeesItsOwnImage(),
        supervisor=PerImage(),
        device=test_device(),
    )
    results = BatchedSolver(run).run(images, [0, 1])
    assert [r.policy.seen for r in results] == [[True, True], [True, True]]
