"""The supervisors: NAFNet checkpoints, oracles, the shipped synthetic network, frozen g in a run."""

import pytest
import torch

from weakdeblur.data.datasets import LevinDataset
from weakdeblur.data.sample import Sample
from weakdeblur.losses import ConsistencyLoss, ConstantWeight, FidelityLoss, WeakLoss
from weakdeblur.metrics import aligned_score, psnr
from weakdeblur.solver import OptimSettings, Solver
from weakdeblur.supervisors import (
    NAFNet,
    NAFNetSupervisor,
    NoisyOracleSupervisor,
    OracleSupervisor,
    SupervisorError,
    SyntheticSupervisor,
)
from weakdeblur.supervisors.synthetic import default_weights

TINY = dict(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=(1, 2), dec_blk_nums=(1, 1))


def test_nafnet_uses_the_official_parameter_names():
    names = set(NAFNet(**TINY).state_dict())
    for name in (
        "intro.weight",
        "ending.bias",
        "encoders.1.1.conv2.weight",
        "encoders.0.0.sca.1.weight",
        "encoders.0.0.norm1.weight",
        "downs.0.weight",
        "middle_blks.0.beta",
        "middle_blks.0.gamma",
        "ups.0.0.weight",
        "decoders.1.0.conv5.bias",
    ):
        assert name in names, name


def test_nafnet_supervisor_loads_a_checkpoint_in_official_layout(tmp_path):
    net = NAFNet(**TINY)
    for name, parameter in net.named_parameters():  # non-trivial blocks
        if name.endswith(("beta", "gamma")):
            parameter.data.fill_(0.3)
    path = tmp_path / "nafnet.pth"
    torch.save({"params": net.state_dict()}, path)
    g = NAFNetSupervisor(str(path), **TINY)
    assert all(not p.requires_grad for p in g.parameters()) and not g.training
    image = torch.rand(1, 3, 21, 18)  # not a multiple of 4: zeros appended, as officially
    with torch.no_grad():
        expected = net(torch.nn.functional.pad(image, (0, 2, 0, 3)))
    restored = g(image)
    assert restored.shape == image.shape
    torch.testing.assert_close(restored, expected[..., :21, :18].clamp(0, 1))
    grey = g(torch.rand(1, 1, 16, 16))  # grey in, grey out
    assert grey.shape == (1, 1, 16, 16)


def test_nafnet_supervisor_errors_are_clear(tmp_path):
    with pytest.raises(SupervisorError, match="checkpoint not found"):
        NAFNetSupervisor(str(tmp_path / "missing.pth"), **TINY)
    path = tmp_path / "other.pth"
    torch.save({"state_dict": NAFNet(**TINY).state_dict()}, path)
    with pytest.raises(SupervisorError, match="no 'params'"):
        NAFNetSupervisor(str(path), **TINY)
    torch.save({"params": NAFNet(**TINY).state_dict()}, path)
    with pytest.raises(SupervisorError, match="does not match"):
        NAFNetSupervisor(str(path), **{**TINY, "width": 16})


def test_oracles_refuse_images_without_ground_truth():
    sample = Sample("no_truth", torch.rand(1, 1, 16, 16), (3, 3))
    for oracle in (OracleSupervisor(), NoisyOracleSupervisor()):
        with pytest.raises(SupervisorError, match="needs ground truth"):
            oracle.prepare(sample)


def test_oracle_returns_the_ground_truth_and_noisy_oracle_degrades_it():
    sharp = torch.rand(1, 1, 32, 32)
    sample = Sample("s", torch.rand(1, 1, 32, 32), (3, 3), sharp=sharp)
    oracle = OracleSupervisor()
    oracle.prepare(sample)
    torch.testing.assert_close(oracle(sample.blurry), sharp)
    noisy = NoisyOracleSupervisor(noise_std=0.05)
    noisy.prepare(sample)
    noisy_psnr = psnr(noisy(sample.blurry), sharp)
    assert 25.0 < noisy_psnr < 27.5  # 20 log10(1/0.05) = 26 dB, less the clamping
    blurred = NoisyOracleSupervisor(noise_std=0.0, blur_sigma=1.5)
    blurred.prepare(sample)
    assert psnr(blurred(sample.blurry), sharp) < 20.0


def test_shipped_synthetic_weights_are_small_and_frozen():
    path = default_weights()
    assert path.is_file() and path.stat().st_size <= 20 * 2**20
    g = SyntheticSupervisor()
    assert sum(p.numel() for p in g.parameters()) <= 5_000_000
    assert all(not p.requires_grad for p in g.parameters())
    restored = g(torch.rand(1, 1, 37, 29))
    assert restored.shape == (1, 1, 37, 29)
    assert 0.0 <= float(restored.min()) and float(restored.max()) <= 1.0


def test_supervisor_parameters_are_unchanged_by_a_run():
    g = SyntheticSupervisor()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    sharp = torch.rand(1, 1, 32, 32)
    sample = Sample("s", torch.rand(1, 1, 32, 32), (5, 5), sharp=sharp)
    from weakdeblur.generators.kernel_mlp import KernelMLP
    from weakdeblur.generators.skip import SkipNetwork

    solver = Solver(
        image_generator=lambda **kw: SkipNetwork(
            **kw,
            channels_down=(8, 8),
            channels_up=(8, 8),
            channels_skip=(2, 2),
            non_local_scales=(),
        ),
        kernel_generator=lambda **kw: KernelMLP(**kw, hidden=32),
        fidelity=FidelityLoss(0.5),
        optim=OptimSettings(iterations=6, log_every=3, snapshot_every=0),
        terms=[WeakLoss("l1", ConstantWeight(1.0)), ConsistencyLoss("l1", ConstantWeight(1.0))],
        supervisor=g,
        device="cpu",
    )
    result = solver.run(sample)
    assert result.status == "ok" and {"weak", "rec"} <= set(result.history[-1])
    assert result.history[-1]["rec"] > 0
    for name, value in g.state_dict().items():
        torch.testing.assert_close(value, before[name])


def test_shipped_synthetic_weights_improve_a_levin_crop(levin_root):
    sample = LevinDataset(levin_root, [17, 15, 13, 27, 11, 19, 21, 21], crop=128).load(
        "im4_kernel5_img"
    )
    g = SyntheticSupervisor()
    with torch.no_grad():
        restored = g(sample.blurry)
    blurry = aligned_score(sample.blurry, sample.sharp, cut=15, max_shift=10).psnr
    supervised = aligned_score(restored, sample.sharp, cut=15, max_shift=10).psnr
    assert supervised > blurry + 1.0  # 27.58 -> 30.81 dB with the shipped weights


def test_run_with_an_oracle_on_an_image_without_ground_truth_fails_clearly(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from conftest import PROJECT, TINY_OVERRIDES

    from weakdeblur.data.io import write_image

    write_image(tmp_path / "photo.png", torch.rand(1, 1, 40, 40))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "weakdeblur.run",
            *TINY_OVERRIDES,
            "data=image",
            f"data.path={tmp_path / 'photo.png'}",
            "data.kernel_size=7",
            "supervisor=oracle",
            "loss=weak",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
        cwd=PROJECT,
        env={**os.environ, "WANDB_SILENT": "true"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "needs ground truth" in done.stdout + done.stderr
    record = json.loads((tmp_path / "out" / "photo" / "metrics.json").read_text())
    assert record["status"] == "failed" and "needs ground truth" in record["message"]
