"""The two ways of drawing a random start (weakdeblur/seeding.py)."""

import pytest
import torch
from omegaconf import OmegaConf

from weakdeblur.generators import KernelGridMLP, KernelMLP, NonLocalBlock, SkipNetwork
from weakdeblur.runtime.preflight import PreflightError, SeedModeName, check_settings
from weakdeblur.runtime.resume import fingerprint
from weakdeblur.seeding import SEED_MODES, SeedModeError, perturbed, reference_start


def tiny_skip() -> SkipNetwork:
    return SkipNetwork(8, 1, [4] * 3, [4] * 3, [2] * 3, non_local_scales=[2])


def test_reference_init_order_is_the_reference_construction_order():
    # (in, out, kernel, stride) of every convolution, outermost scale first; within a scale:
    # skip, deeper (non-local g, W, theta, phi between its two convolutions), merge
    expected = [
        (8, 2, 1, 1), (8, 4, 3, 2), (4, 4, 3, 1), (6, 4, 3, 1), (4, 4, 1, 1),
        (4, 2, 1, 1), (4, 4, 3, 2), (4, 4, 3, 1), (6, 4, 3, 1), (4, 4, 1, 1),
        (4, 2, 1, 1), (4, 4, 3, 2), (4, 2, 1, 1), (2, 4, 1, 1), (4, 2, 1, 1), (4, 2, 1, 1),
        (4, 4, 3, 1), (6, 4, 3, 1), (4, 4, 1, 1),
        (4, 1, 1, 1),
    ]  # fmt: skip
    net = tiny_skip()
    order = net.reference_init_order()
    assert [
        (c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in order
    ] == expected
    assert len({id(c) for c in order}) == sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    mlp = KernelMLP(5, code_size=16, hidden=8)
    assert [(m.in_features, m.out_features) for m in mlp.reference_init_order()] == [
        (16, 8),
        (8, 25),
    ]


def test_reference_start_ignores_the_outer_seed_and_reuses_z_x_for_z_k():
    starts = []
    for outer in (1, 2):
        torch.manual_seed(outer)
        image_net, kernel_net = tiny_skip(), KernelMLP(5, code_size=16, hidden=8)
        code, kernel_code = reference_start(image_net, kernel_net, (1, 8, 12, 12), 16, 0.1)
        starts.append(
            (
                code,
                kernel_code,
                [p.detach().clone() for p in image_net.parameters()],
                torch.randn(3),
            )
        )
    (code, kernel_code, weights, after), (code2, kernel_code2, weights2, after2) = starts
    torch.testing.assert_close(code, code2, rtol=0, atol=0)
    torch.testing.assert_close(after, after2, rtol=0, atol=0)  # the noise stream too
    assert all(torch.equal(a, b) for a, b in zip(weights, weights2, strict=True))
    # fill_noise reseeds: z_k is the first 16 values of z_x (after torch.manual_seed(0))
    torch.testing.assert_close(kernel_code, code.flatten()[:16], rtol=0, atol=0)
    assert code.min() >= 0 and code.max() < 0.1
    blocks = [m for m in image_net.modules() if isinstance(m, NonLocalBlock)]
    assert blocks and all(block.reference_arithmetic for block in blocks)
    assert not NonLocalBlock(4).reference_arithmetic  # the default keeps the cheap product


def test_reference_arithmetic_is_the_same_maths():
    block = NonLocalBlock(8)
    with torch.no_grad():
        block.out[1].weight.fill_(1.0)
    x = torch.rand(1, 8, 9, 7)
    cheap = block(x)
    block.reference_arithmetic = True
    torch.testing.assert_close(block(x), cheap)


def test_reference_start_needs_selfdeblur_generators():
    with pytest.raises(SeedModeError, match="KernelGridMLP"):
        reference_start(
            tiny_skip(), KernelGridMLP(5, code_size=16, hidden=8), (1, 8, 12, 12), 16, 0.1
        )


def test_perturbation_draws_sigma_times_a_standard_normal_in_both_modes():
    code = torch.zeros(1, 2, 40, 40)
    torch.manual_seed(0)
    seeded = perturbed(code, torch.empty_like(code), 1e-3, "seeded")
    torch.manual_seed(0)
    reference = perturbed(code, torch.empty_like(code), 1e-3, "reference")
    torch.testing.assert_close(seeded, reference)
    assert 0.9e-3 < float(reference.std()) < 1.1e-3


def test_seed_mode_settings_and_fingerprint():
    assert tuple(mode.value for mode in SeedModeName) == SEED_MODES
    base = {"seed": 0, "data": {"crop": 128}}
    assert fingerprint({**base, "seed_mode": "seeded"}) == fingerprint(base)  # old folders resume
    assert fingerprint({**base, "seed_mode": "reference"}) != fingerprint(base)
    check_settings(OmegaConf.create({"seed_mode": "reference"}))
    with pytest.raises(PreflightError, match="seed_mode"):
        check_settings(OmegaConf.create({"seed_mode": "fixed"}))


def test_solver_and_batched_runs_refuse_unknown_or_unsupported_modes():
    from weakdeblur.batched import BatchedRuns
    from weakdeblur.data import DemoDataset
    from weakdeblur.solver import Solver

    sample = DemoDataset(size=24, true_kernel_size=3, kernel_size=3).load("camera24_k3_s0")
    solver = Solver(lambda **_: tiny_skip(), lambda **_: KernelMLP(3), device="cpu")
    with pytest.raises(SeedModeError, match="seed_mode"):
        solver.run(sample, seed_mode="fixed")
    with pytest.raises(SeedModeError, match="batch_size"):
        BatchedRuns(solver, [sample.name], lambda name: (sample, None)).run(
            sample, seed_mode="reference"
        )


def test_reference_ssim_arithmetic_is_the_same_maths_and_follows_the_mode():
    from weakdeblur.losses import FidelityLoss, ZeroPaddedSSIM
    from weakdeblur.seeding import follow_reference_arithmetic

    first, second = torch.rand(1, 1, 30, 30), torch.rand(1, 1, 30, 30)
    ssim = ZeroPaddedSSIM()
    torch.testing.assert_close(ssim.reference_window()[0, 0], ssim.window[0])
    cheap = ssim(first, second)
    ssim.reference_arithmetic = True
    torch.testing.assert_close(ssim(first, second), cheap)
    fidelity = FidelityLoss()
    follow_reference_arithmetic(fidelity)
    assert fidelity.ssim.reference_arithmetic
    follow_reference_arithmetic(fidelity, False)
    assert not fidelity.ssim.reference_arithmetic


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+exp=nonuniform", "generator=grid_small"], "generator.kernel is KernelGridMLP"),
        (["+exp=selfdeblur", "solver.batch_size=2"], "set solver.batch_size=1"),
        (["+exp=selfdeblur"], None),
        (["+exp=weak_only"], None),
    ],
)
def test_reference_mode_is_refused_before_any_work_where_it_cannot_follow_the_reference(
    overrides, message
):
    from conftest import CONF, TINY_OVERRIDES
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=[*TINY_OVERRIDES, *overrides, "seed_mode=reference"]
        )
    if message is None:
        check_settings(cfg)
    else:
        with pytest.raises(PreflightError, match=message):
            check_settings(cfg)
        cfg.seed_mode = "seeded"
        check_settings(cfg)  # the same settings are fine with the seeded start
