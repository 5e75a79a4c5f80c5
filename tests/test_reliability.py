"""The reliability gate: the kernel-stability signal separates an identifiable blur from one
the image cannot determine, an untrusted image runs exactly as SelfDeblur, the verdict reaches
metrics.json, and misuse ends in one clear message."""

import json
from functools import partial

import pytest
import torch
from conftest import CONF, TINY_OVERRIDES
from hydra import compose, initialize_config_dir

from weakdeblur.data import ShakeDataset
from weakdeblur.data.sample import Sample
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import ConstantWeight, LossConfigError, WeakLoss
from weakdeblur.reliability import StabilityGate, corner_crops
from weakdeblur.run import run_images
from weakdeblur.solver import InputSettings, OptimSettings, Solver
from weakdeblur.stopping import (
    ConsistencyStop,
    OracleBest,
    PolicyError,
    WindowedVariance,
    start_policy,
)
from weakdeblur.supervisors import IdentitySupervisor, MAPSupervisor

SMALL = dict(channels_down=[8] * 2, channels_up=[8] * 2, channels_skip=[2] * 2, non_local_scales=[])


def shake(photo: str) -> Sample:
    source = ShakeDataset(photos=[photo], kernel_sizes=[9], size=72, seed=0)
    return source.load(source.names()[0])


def smooth_ramp() -> Sample:
    """A gentle ramp plus noise: no edges, so nothing pins the kernel down."""
    generator = torch.Generator().manual_seed(0)
    rows, cols = torch.meshgrid(torch.linspace(0, 1, 72), torch.linspace(0, 1, 72), indexing="ij")
    image = 0.3 + 0.4 * (0.7 * cols + 0.3 * rows) + 0.02 * torch.randn(72, 72, generator=generator)
    return Sample("ramp", image.clamp(0, 1)[None, None], (9, 9))


def test_corner_crops_are_the_four_corners():
    sample = Sample("a", torch.arange(36.0).reshape(1, 1, 6, 6) / 64, (3, 3))
    crops = corner_crops(sample, 4)
    assert [tuple(c.blurry.shape[-2:]) for c in crops] == [(4, 4)] * 4
    assert (
        float(crops[0].blurry[0, 0, 0, 0]) == 0.0
        and float(crops[3].blurry[0, 0, -1, -1]) == 35 / 64
    )
    assert all(c.sharp is None and c.kernel is None for c in crops)


def test_stability_separates_a_textured_image_from_a_featureless_one():
    torch.set_num_threads(1)
    gate = StabilityGate(threshold=0.34)
    textured = gate(shake("gravel"), MAPSupervisor())
    featureless = gate(smooth_ramp(), MAPSupervisor())
    # measured 0.28 and 0.67 (τ 0.34)
    assert textured["trusted"] and textured["kernel_stability"] < 0.4, textured
    assert not featureless["trusted"] and featureless["kernel_stability"] > 0.55, featureless


def test_misuse_ends_in_one_clear_message():
    sample = shake("camera")
    with pytest.raises(LossConfigError, match="supervisor=map"):
        StabilityGate()(sample, IdentitySupervisor())
    with pytest.raises(LossConfigError, match="too small"):
        StabilityGate(crop_fraction=0.9)(
            Sample("tiny", sample.blurry[..., :18, :18], (9, 9)),
            MAPSupervisor(),  # sub-crops of 18 = 2 x 9 px: the whole image
        )
    with pytest.raises(LossConfigError, match="crop_fraction"):
        StabilityGate(crop_fraction=1.0)


class Verdict:
    def __init__(self, trusted: bool):
        self.trusted, self.calls = trusted, 0

    def __call__(self, sample, supervisor):
        self.calls += 1
        return {"trusted": self.trusted, "kernel_stability": 0.0 if self.trusted else 1.0}


def solve(sample, terms=(), supervisor=None, gate=None, stopping=None):
    torch.manual_seed(0)
    solver = Solver(
        partial(SkipNetwork, **SMALL),
        partial(KernelMLP, hidden=32),
        optim=OptimSettings(iterations=6, log_every=3, snapshot_every=0),
        inputs=InputSettings(kernel_code_size=16),
        terms=terms,
        supervisor=supervisor,
        gate=gate,
        stopping=stopping,
    )
    return solver.run(sample, seed=3)


def test_an_untrusted_image_runs_exactly_as_without_supervision():
    sample = shake("camera")
    weak = [WeakLoss(weight=ConstantWeight(1.0))]
    plain = solve(sample)
    distrusted = solve(sample, weak, IdentitySupervisor(), Verdict(False))
    trusted = solve(sample, weak, IdentitySupervisor(), Verdict(True))
    assert torch.equal(distrusted.image, plain.image) and torch.equal(
        distrusted.kernel, plain.kernel
    )
    assert distrusted.gate == {"trusted": False, "kernel_stability": 1.0}
    # the weak term is live when trusted: the comparison above is not vacuous
    assert (trusted.image - plain.image).abs().max() > 1e-3
    assert "weak" in trusted.history[-1] and "weak" not in distrusted.history[-1]
    assert plain.gate is None


def run_tiny(output, *overrides):
    shake_overrides = [
        "data=shake",
        "data.photos=[gravel]",
        "data.kernel_sizes=[9]",
        "data.size=72",
        "data.seed=0",
        "optim.iterations=10",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=[*TINY_OVERRIDES, *shake_overrides, *overrides]
        )
    assert run_images(cfg, output) == 0
    (folder,) = [path.parent for path in output.glob("*/metrics.json")]
    return json.loads((folder / "metrics.json").read_text()), torch.load(folder / "k.pt")


def test_the_verdict_reaches_metrics_json_and_a_distrusted_map_run_is_selfdeblur(tmp_path):
    torch.set_num_threads(1)
    supervised = [
        "+exp=weak_rec",
        "supervisor=map",
        "gate=stability",
        "loss.terms.weak.weight.value=10",
    ]
    record, _ = run_tiny(tmp_path / "trusted", *supervised)
    assert record["gate"]["trusted"] is True
    assert 0 < record["gate"]["kernel_stability"] < 0.4
    distrusted, distrusted_kernel = run_tiny(
        tmp_path / "distrusted", *supervised, "gate.threshold=0.01"
    )
    assert distrusted["gate"]["trusted"] is False
    assert "kernel_start" not in distrusted  # no warm start was asked for
    plain, plain_kernel = run_tiny(tmp_path / "plain", "+exp=selfdeblur")
    assert "gate" not in plain
    # the map g, its gate and x̄ draw no random numbers: the same seed gives the same numbers
    assert torch.equal(distrusted_kernel, plain_kernel)
    assert distrusted["psnr"] == plain["psnr"]
    assert abs(record["psnr"] - plain["psnr"]) > 0.01  # the supervised run is another run


def test_eq7_on_a_distrusted_image_falls_back_to_the_budget():
    sample = shake("camera")
    eager = ConsistencyStop(threshold=1e9, consecutive=1, check_every=3, min_fraction=0.0)
    stopped = solve(sample, (), IdentitySupervisor(), Verdict(True), eager)
    assert stopped.stopped_early and stopped.iterations == 3  # g trusted: Eq. 7 stops at once
    distrusted = solve(sample, (), IdentitySupervisor(), Verdict(False), eager)
    assert not distrusted.stopped_early and distrusted.iterations == 6
    # a rule that does not read g is kept; one that fails for another reason still fails
    windowed = WindowedVariance(window=2, patience=4, check_every=1)
    assert start_policy(windowed, 6, sample, None, None, trust_supervisor=False) is windowed
    no_truth = Sample("no_truth", sample.blurry, sample.kernel_size)
    with pytest.raises(PolicyError):
        start_policy(OracleBest(), 6, no_truth, IdentitySupervisor(), no_truth.blurry, False)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+exp=selfdeblur", "gate=stability"], "gate needs a supervisor .* supervisor is none"),
        (["+exp=weak_rec", "kernel_start=map"], "kernel_start needs .* SyntheticSupervisor"),
        (
            ["+exp=weak_rec", "supervisor=identity", "gate=stability", "kernel_start=map"],
            "gate and kernel_start need",
        ),
    ],
)
def test_a_group_that_needs_k_bar_without_a_map_supervisor_is_refused_before_any_work(
    overrides, message
):
    from weakdeblur.runtime.preflight import PreflightError, check_settings

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY_OVERRIDES, *overrides])
    with pytest.raises(PreflightError, match=message):
        check_settings(cfg)
