"""Speed switches leave a short run's result within tolerance of the eager path; runner wiring."""

import contextlib
import json
import math
import warnings
from functools import partial

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import run_weakdeblur, test_device

import weakdeblur.speed as speed_module
from weakdeblur.batched import BatchedRuns
from weakdeblur.data.sample import Sample
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import FidelityLoss
from weakdeblur.solver import InputSettings, OptimSettings, Solver
from weakdeblur.speed import (
    CompiledOrEager,
    SpeedSettings,
    auto_threads,
    free_threads,
    resolve_threads,
    worker_threads,
)
from weakdeblur.supervisors.base import IdentitySupervisor
from weakdeblur.types import LossTerm

pytestmark = pytest.mark.device  # solvers on --device (tests/conftest.py)

SMALL = dict(
    channels_down=[16] * 3, channels_up=[16] * 3, channels_skip=[4] * 3, non_local_scales=[2]
)
EAGER = SpeedSettings(inference_constants=False)


def solver(speed: SpeedSettings, iterations: int = 4, supervisor=None) -> Solver:
    return Solver(
        partial(SkipNetwork, **SMALL),
        partial(KernelMLP, hidden=64),
        fidelity=FidelityLoss(0.25),
        optim=OptimSettings(iterations=iterations, log_every=2, snapshot_every=0),
        inputs=InputSettings(kernel_code_size=32),
        supervisor=supervisor,
        device=test_device(),
        speed=speed,
    )


def sample(dtype=torch.float32, name: str = "img", seed: int = 7) -> Sample:
    blurry = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    return Sample(name, blurry.to(dtype), (7, 7))


@pytest.fixture
def float64():
    """Double precision: Adam turns float32 round-off of near-zero gradients (biases before a
    BatchNorm) into lr-sized steps, so float32 runs that differ only in summation order drift
    apart by ~1e-2 within 16 iterations (as 1 vs 2 threads do); in float64 they agree."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_channels_last_equals_eager(float64):
    eager = solver(EAGER).run(sample(torch.float64), seed=1)
    fast = solver(SpeedSettings(channels_last=True)).run(sample(torch.float64), seed=1)
    torch.testing.assert_close(fast.image, eager.image, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast.kernel, eager.kernel, atol=1e-7, rtol=0)
    assert fast.history[-1]["loss"] == pytest.approx(eager.history[-1]["loss"], abs=1e-9)


def test_inference_constants_and_cudnn_flag_give_identical_results():
    """x̄ under inference_mode is the no_grad value; cudnn_benchmark is a no-op on a CPU."""
    from weakdeblur.losses import WeakLoss

    def with_weak(speed):
        s = solver(speed, iterations=4, supervisor=IdentitySupervisor())
        s.terms = [WeakLoss(weight=0.5)]
        return s.run(sample(), seed=2)

    eager = with_weak(EAGER)
    fast = with_weak(SpeedSettings(inference_constants=True, cudnn_benchmark=True))
    assert torch.equal(fast.supervised, eager.supervised)
    assert torch.equal(fast.image, eager.image)
    assert fast.history[-1]["weak"] == eager.history[-1]["weak"] > 0


def test_bf16_autocast_runs_and_stays_close():
    # one iteration: the returned x is G_x's first forward pass (before any update), so the
    # comparison sees bf16 rounding, not its growth through the Adam steps
    eager = solver(EAGER, iterations=1).run(sample(), seed=3)
    bf16 = solver(SpeedSettings(bf16=True), iterations=1).run(sample(), seed=3)
    assert bf16.status == "ok" and bf16.image.dtype == torch.float32
    assert torch.isfinite(bf16.image).all()
    difference = (bf16.image - eager.image).abs()
    assert 0 < difference.mean() < 0.02  # bf16 keeps ~3 significant digits


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    import weakdeblur.speed as speed_module

    def broken_compile(*args, **kwargs):
        def compiled(*a, **k):
            raise RuntimeError("no C++ compiler (simulated)")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(speed_module, "_compile_failed", set())
    eager = solver(EAGER, iterations=4).run(sample(), seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = solver(SpeedSettings(compile=True), iterations=4).run(sample(), seed=4)
        second = solver(SpeedSettings(compile=True), iterations=4).run(sample(), seed=4)
    messages = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    assert len(messages) == 1 and "simulated" in messages[0]
    assert torch.equal(first.image, eager.image) and torch.equal(second.image, eager.image)


@pytest.mark.slow
def test_compiled_generator_matches_eager():
    """A real inductor compile (~1-2 min on a CPU): the first forward pass agrees with eager."""
    torch.manual_seed(0)
    network = SkipNetwork(**SMALL)
    code = torch.rand(1, 8, 38, 38)
    compiled = CompiledOrEager(network)
    torch.testing.assert_close(compiled(code), network(code), atol=1e-5, rtol=0)
    assert compiled._ok is True
    result = solver(SpeedSettings(compile=True), iterations=4).run(sample(), seed=5)
    assert result.status == "ok" and torch.isfinite(result.image).all()


def test_settings_are_checked_and_threads_split_the_cores(monkeypatch):
    with pytest.raises(ValueError, match="batch_size"):
        SpeedSettings(batch_size=0)
    with pytest.raises(ValueError, match="compile_mode"):
        SpeedSettings(compile_mode="fastest")
    with pytest.raises(ValueError, match="bf16"):
        SpeedSettings(bf16="sometimes")
    with pytest.raises(ValueError, match="channels_last must be true, false or auto"):
        SpeedSettings(channels_last="nhwc")
    monkeypatch.setattr(speed_module, "affinity_cores", lambda: 6)
    assert worker_threads(1) == 6 and worker_threads(4) == 1 and worker_threads(10**6) == 1


@pytest.mark.parametrize(
    ("cores", "load", "jobs", "expected"),
    [
        (2, 2.2, 1, 1),  # a 2-core machine running two other one-thread jobs
        (2, 0.1, 1, 2),  # idle: every core
        (16, 3.6, 1, 12),  # 16 - round(3.6) free
        (16, 0.0, 4, 4),  # idle, 4 launcher jobs: cores // jobs
        (16, 10.0, 4, 1),  # 6 free shared by 4 jobs
        (4, 9.0, 1, 1),  # overloaded: at least one thread
    ],
)
def test_auto_threads_take_the_free_cores(monkeypatch, cores, load, jobs, expected):
    monkeypatch.setattr(speed_module, "affinity_cores", lambda: cores)
    monkeypatch.setattr(speed_module, "load_average", lambda: load)
    threads, why = free_threads(jobs)
    assert threads == expected and f"{cores} cores" in why


def test_auto_threads_decided_and_logged_once_explicit_count_wins(monkeypatch, caplog):
    monkeypatch.setattr(speed_module, "_auto_threads", {})
    monkeypatch.setattr(speed_module, "affinity_cores", lambda: 8)
    monkeypatch.setattr(speed_module, "load_average", lambda: 3.0)
    with caplog.at_level("INFO", logger="weakdeblur"):
        assert resolve_threads("auto") == 5
        monkeypatch.setattr(speed_module, "load_average", lambda: 8.0)  # the sweep's own load
        assert auto_threads() == 5 and resolve_threads("auto") == 5
    assert len([r for r in caplog.records if "threads=auto" in r.getMessage()]) == 1
    assert resolve_threads(3) == 3 and resolve_threads(None) is None
    for wrong in ("many", 0, -2, True, 1.5):
        with pytest.raises(ValueError, match="threads"):
            resolve_threads(wrong)


def _no_native_bf16(monkeypatch, flags=frozenset()):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    monkeypatch.setattr(speed_module, "cpu_flags", lambda: set(flags))


def test_bf16_auto_follows_the_capability(monkeypatch, caplog):
    monkeypatch.setattr(speed_module, "_bf16_logged", set())
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = SpeedSettings(bf16="auto")
    _no_native_bf16(monkeypatch)
    with caplog.at_level("INFO", logger="weakdeblur"):
        assert auto.uses_bf16(cpu) is False and auto.uses_bf16(cpu) is False
    assert isinstance(auto.autocast(cpu), contextlib.nullcontext)
    assert [r.getMessage() for r in caplog.records].count(
        "solver.bf16=auto: off on cpu (no native bf16 on this CPU (no avx512_bf16, amx_bf16 or "
        "bf16 flag))"
    ) == 1
    _no_native_bf16(monkeypatch, {"avx512_bf16", "avx2"})
    assert auto.uses_bf16(cpu) is True
    assert isinstance(auto.autocast(cpu), torch.autocast)
    _no_native_bf16(monkeypatch)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert auto.uses_bf16(cpu) is True
    for supported in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, s=supported, **k: s)
        assert auto.uses_bf16(cuda) is supported
    assert auto.uses_bf16(torch.device("mps")) is False
    # explicit settings ignore the capability
    assert SpeedSettings(bf16=True).uses_bf16(cpu) and not SpeedSettings(bf16=False).uses_bf16(cpu)


def test_channels_last_auto_follows_bf16(monkeypatch):
    """NHWC pays with bf16 (oneDNN) and costs in float32 on AVX2: ``auto`` is on exactly where
    the forward pass is bf16, and the prepared G_x is the NHWC wrapper only then."""
    monkeypatch.setattr(speed_module, "_bf16_logged", set())
    cpu = torch.device("cpu")
    network = torch.nn.Conv2d(1, 1, 3)
    _no_native_bf16(monkeypatch)
    both_auto = SpeedSettings(bf16="auto", channels_last="auto")
    assert both_auto.uses_channels_last(cpu) is False
    assert both_auto.prepare(network, cpu) is network
    _no_native_bf16(monkeypatch, {"amx_bf16"})
    assert both_auto.uses_channels_last(cpu) is True
    assert isinstance(both_auto.prepare(network, cpu), speed_module.ChannelsLast)
    assert SpeedSettings(bf16=True, channels_last="auto").uses_channels_last(cpu) is True
    assert SpeedSettings(bf16=False, channels_last="auto").uses_channels_last(cpu) is False
    assert SpeedSettings(bf16=False, channels_last=True).uses_channels_last(cpu) is True


class _Dtypes(LossTerm):
    """Records the dtypes the loss terms see; contributes nothing."""

    name = "dtypes"

    def __init__(self):
        super().__init__()
        self.seen = set()

    def forward(self, state):
        self.seen.add(
            (state.latent.dtype, state.image.dtype, state.kernel.dtype, state.blurred.dtype)
        )
        return None


def test_bf16_cpu_run_lowers_the_loss_with_float32_losses():
    # a smooth observation (box-filtered noise), which the prior fits within a few iterations
    noise = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(7))
    smooth = Sample("smooth", torch.nn.functional.avg_pool2d(noise, 9, 1), (7, 7))
    recorder = _Dtypes()
    run = Solver(
        partial(SkipNetwork, **SMALL),
        partial(KernelMLP, hidden=64),
        fidelity=FidelityLoss(1.0),  # MSE throughout: comparable losses
        optim=OptimSettings(iterations=16, log_every=2, snapshot_every=0),
        inputs=InputSettings(kernel_code_size=32),
        terms=[recorder],
        device=test_device(),
        speed=SpeedSettings(bf16=True),
    ).run(smooth, seed=6)
    assert run.status == "ok" and len(run.history) == 8
    assert recorder.seen == {(torch.float32,) * 4}  # the networks' bf16 outputs, cast back
    for row in run.history:
        for key, value in row.items():
            assert type(value) is float and math.isfinite(value), key
    assert run.history[-1]["loss"] < 0.5 * run.history[0]["loss"]
    assert all(t.dtype == torch.float32 for t in (run.image, run.kernel, run.blurred))


def test_batched_runs_serve_a_one_image_at_a_time_runner(float64):
    """The runner's view of solver.batch_size: groups by size, replays each image's log records."""
    samples = {
        "a": sample(torch.float64, "a", 1),
        "b": sample(torch.float64, "b", 2),
        "odd": Sample("odd", torch.rand(1, 1, 24, 24, dtype=torch.float64), (7, 7)),
        "c": sample(torch.float64, "c", 3),
    }
    loads: list[str] = []

    def load(name):
        loads.append(name)
        return samples[name], None

    speed = SpeedSettings(batch_size=2)
    runs = BatchedRuns(solver(speed), list(samples), load, skip=lambda name: name == "b")
    for name in ("a", "odd", "c"):
        logged = []
        result = runs.run(samples[name], seed=0, on_log=logged.append)
        alone = solver(EAGER).run(samples[name], seed=0)
        assert result.name == name and [r.iteration for r in logged] == [2, 4]
        torch.testing.assert_close(result.image, alone.image, atol=1e-6, rtol=0)
    # "a" is solved with "c" (b is skipped, odd has another size); odd alone
    assert loads == ["odd", "c"]  # looked ahead once each; the skipped image never loaded


def test_batch_size_through_the_entry_point(tmp_path):
    folder = tmp_path / "blurry"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("one", "two", "three"):
        iio.imwrite(folder / f"{name}.png", (rng.random((32, 32)) * 255).astype(np.uint8))
    common = [
        "data=folder",
        f"data.root={folder}",
        "data.kernel_size=7",
        "+data.kernel_sizes.two=9",
        "generator=small",
        "optim.iterations=4",
        "optim.log_every=2",
        "optim.snapshot_every=0",
        "stopping.check_every=2",
        "logger=none",
        "progress=false",
        "metrics.lpips=false",
        "threads=1",
    ]
    outputs = {}
    for batch in (1, 2):
        out = tmp_path / f"b{batch}"
        done = run_weakdeblur(*common, f"solver.batch_size={batch}", f"hydra.run.dir={out}")
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[batch] = out
    for name in ("one", "two", "three"):
        histories = [json.loads((outputs[b] / name / "history.json").read_text()) for b in (1, 2)]
        assert [row["iteration"] for row in histories[1]] == [2, 4]
        assert histories[1][-1]["loss"] == pytest.approx(histories[0][-1]["loss"], rel=0.05)
        images = [iio.imread(outputs[b] / name / "x.png").astype(float) for b in (1, 2)]
        assert np.abs(images[0] - images[1]).mean() < 3  # grey levels; float32 drift only
    summary = json.loads((outputs[2] / "summary.json").read_text())
    assert summary["ok"] == 3
