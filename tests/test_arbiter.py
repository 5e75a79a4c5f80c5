"""No-reference criteria (weakdeblur.arbiter) on the synthetic demo: which pair each prefers."""

import pytest
import torch

from weakdeblur.arbiter import (
    Arbiter,
    Candidate,
    cross_scale_inconsistency,
    cross_validated_fit,
    data_fit,
    gradient_sparsity,
    holdout_mask,
    kernel_disagreement,
    noise_level,
    residual_to_noise,
)
from weakdeblur.data import DemoDataset
from weakdeblur.nonblind import deconvolve


@pytest.fixture(scope="module")
def candidates():
    """The demo (80 px camera, 11x11 shake kernel, 1 % noise) and five candidate pairs."""
    source = DemoDataset(size=80, true_kernel_size=11, kernel_size=13, offset=None)
    sample = source.load(source.names()[0])
    y, k = sample.blurry, sample.kernel.reshape(1, 1, 11, 11)
    delta = torch.zeros_like(k)
    delta[..., 5, 5] = 1
    rotated = torch.rot90(k, 1, (-2, -1))
    box = torch.ones_like(k) / k.numel()
    return y, {
        "truth": (sample.sharp, k),
        "deconvolved": (deconvolve(y, k), k),
        "trivial": (y, delta),
        "rotated": (deconvolve(y, rotated), rotated),
        "box": (deconvolve(y, box), box),
    }


def test_the_data_fit_prefers_the_trivial_pair(candidates):
    y, pairs = candidates
    fit = {name: data_fit(x, k, y) for name, (x, k) in pairs.items()}
    assert fit["trivial"] == 0.0  # (y, delta) explains y exactly: why the data fit is weak
    assert fit["truth"] < 2e-4  # the noise (1 %) and 8-bit rounding, 1e-4
    assert fit["rotated"] > 10 * fit["truth"]


def test_the_cross_validated_fit_prefers_the_true_kernel(candidates):
    y, pairs = candidates
    cv = {name: cross_validated_fit(y, k) for name, (_, k) in pairs.items()}
    assert cv["truth"] == cv["deconvolved"]  # it reads the kernel only
    for wrong in ("trivial", "rotated", "box"):  # measured: 1.76x, 2.75x, 1.28x the truth's
        assert cv[wrong] > 1.2 * cv["truth"], (wrong, cv)


def test_cross_scale_consistency_is_exact_for_a_delta_and_rewards_blur(candidates):
    y, pairs = candidates
    scale = {name: cross_scale_inconsistency(x, k) for name, (x, k) in pairs.items()}
    assert scale["trivial"] == 0.0
    # a sharp image with a long kernel breaks the identity most: alone it prefers blur
    assert scale["box"] < scale["rotated"] < scale["truth"]


def test_gradient_sparsity_ranks_sharp_over_deconvolved_over_blurry(candidates):
    y, pairs = candidates
    sparsity = {name: gradient_sparsity(x) for name, (x, _) in pairs.items()}
    # measured: truth 42.6, deconvolved 48.3, rotated 50.4, box 51.1, blurry (trivial) 65.8
    assert sparsity["truth"] < sparsity["deconvolved"] < sparsity["rotated"] < sparsity["box"]
    assert sparsity["box"] < sparsity["trivial"]
    assert gradient_sparsity(2 * y) == pytest.approx(sparsity["trivial"])  # scale-invariant
    assert gradient_sparsity(torch.full_like(y, 0.5)) == float("inf")  # no gradient at all


def test_kernel_votes_count_once_per_group(candidates):
    _, pairs = candidates
    k, rotated = pairs["truth"][1], pairs["rotated"][1]
    single = kernel_disagreement([k, k, rotated])
    grouped = kernel_disagreement([k, k, rotated], groups=["g", "g", "seed"])
    assert single[0] == pytest.approx(single[2] / 2)  # one of two neighbours disagrees
    assert grouped[0] == pytest.approx(grouped[2])  # one group against the other: symmetric
    assert kernel_disagreement([k]) == [0.0]


def test_the_holdout_mask_holds_out_about_a_quarter_in_blocks():
    mask = holdout_mask((64, 64), block=4, fraction=0.25, seed=3)
    assert mask.shape == (1, 1, 64, 64) and 0.15 < mask.double().mean() < 0.35
    blocks = mask[0, 0].reshape(16, 4, 16, 4)
    assert bool((blocks.all(dim=(1, 3)) | ~blocks.any(dim=(1, 3))).all())  # whole blocks


@pytest.mark.parametrize("sigma", [0.005, 0.01, 0.02])
def test_the_noise_level_of_a_smooth_image_is_found_within_ten_percent(sigma):
    generator = torch.Generator().manual_seed(1)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 136, 136, generator=generator), 9, 1)
    noisy = smooth + sigma * torch.randn(smooth.shape, generator=generator)
    noisy = torch.round(noisy.clamp(0, 1) * 255) / 255  # 8-bit, as the data
    effective = (sigma**2 + 1 / (12 * 255**2)) ** 0.5  # plus the rounding's variance
    assert abs(noise_level(noisy) / effective - 1) < 0.1, noise_level(noisy)


def test_the_residual_is_the_noise_for_the_truth_and_far_above_for_a_wrong_kernel(candidates):
    y, pairs = candidates
    ratio = {name: residual_to_noise(x, k, y) for name, (x, k) in pairs.items()}
    assert 0.6 < ratio["truth"] < 1.4, ratio  # the residual of the truth is the noise
    assert ratio["rotated"] > 5 and ratio["box"] > 5, ratio  # they do not explain y


def test_the_discrepancy_gate_keeps_the_preferred_arm_unless_it_does_not_explain_y(candidates):
    y, pairs = candidates
    arbiter = Arbiter({"cross_validated_fit": 1.0}, prefer=["supervised"], discrepancy=1.5)

    def field(supervised: str) -> list[Candidate]:
        return [
            Candidate("plain", "plain", *pairs["trivial"], arm="plain"),
            Candidate("deconvolved", "plain-2", *pairs["deconvolved"], arm="plain"),
            Candidate("supervised", "g", *pairs[supervised], arm="supervised"),
        ]

    # the supervised arm explains y: preferred, although the cross-validated fit ties it
    trusted = arbiter.choose(y, field("truth"))
    assert trusted.index == 2 and "supervised preferred" in trusted.reason
    assert (
        "residual_to_noise" in trusted.scores
        and trusted.total == trusted.scores["cross_validated_fit"]
    )
    # its kernel is wrong: set aside; the cross-validated fit picks among the others
    wrong = arbiter.choose(y, field("rotated"))
    assert wrong.index == 1, wrong
    assert "set aside, residual > 1.5 σ̂²: supervised" in wrong.reason
    # without the gate, the preference alone keeps the wrong one
    assert (
        Arbiter({"cross_validated_fit": 1.0}, prefer=["supervised"])
        .choose(y, field("rotated"))
        .index
        == 2
    )
    with pytest.raises(ValueError, match="discrepancy must be a number > 0"):
        Arbiter({"data_fit": 1.0}, discrepancy=0)


def test_the_excess_gate_measures_residuals_from_the_best_fit_in_noise_units(candidates):
    """Relative to the best-fitting candidate, not to zero: the trivial pair (y, δ) fits y
    exactly, the truth pays about one noise variance more (kept), a wrong kernel more than
    five (set aside)."""
    y, pairs = candidates
    arbiter = Arbiter({"data_fit": 1.0}, prefer=["supervised"], excess=2.0)
    assert arbiter.needs == ["data_fit", "residual_to_noise"]

    def choose(supervised: str):
        return arbiter.choose(
            y,
            [
                Candidate("plain", "plain", *pairs["trivial"], arm="plain"),
                Candidate("supervised", "g", *pairs[supervised], arm="supervised"),
            ],
        )

    kept = choose("truth")
    excess = kept.scores["residual_to_noise"][1] - kept.scores["residual_to_noise"][0]
    assert 0.6 < excess < 1.4 and kept.index == 1 and "set aside" not in kept.reason
    wrong = choose("rotated")
    assert wrong.index == 0, wrong
    assert "set aside, residual > best fit + 2 σ̂²: supervised +" in wrong.reason
    with pytest.raises(ValueError, match="excess must be a number > 0"):
        Arbiter({"data_fit": 1.0}, excess=-1)
