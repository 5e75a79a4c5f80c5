"""Paired statistics over images and seeds (weakdeblur.paired) and the report's --paired."""

import json
import statistics

import numpy as np
import pytest
from test_report import fake_job, scores

from weakdeblur.paired import PairingError, bootstrap_interval, compare
from weakdeblur.report import main

BASELINE = {("a", 0): 20.0, ("a", 1): 22.0, ("b", 0): 30.0, ("b", 1): 30.0, ("c", 0): 25.0}
CANDIDATE = {("a", 0): 21.0, ("a", 1): 25.0, ("b", 0): 29.0, ("b", 1): 30.0, ("d", 3): 9.0}


def test_per_image_means_over_common_seeds_then_paired_differences():
    result = compare(BASELINE, CANDIDATE, names=("sd", "ours"), resamples=2000)
    assert [image.image for image in result.images] == ["a", "b"]
    a, b = result.images
    assert (a.baseline, a.candidate, a.difference) == (21.0, 23.0, 2.0)
    assert (b.baseline, b.candidate, b.difference) == (30.0, 29.5, -0.5)
    assert (a.baseline_spread, a.candidate_spread, b.candidate_spread) == (2.0, 4.0, 1.0)
    assert result.difference == pytest.approx(0.75)
    assert (result.baseline, result.candidate) == (25.5, 26.25)
    assert (result.wins, result.losses, result.ties) == (1, 1, 0)
    assert (result.draw_wins, result.draw_losses, result.draws) == (2, 1, 4)
    assert result.unpaired == {"sd": 1, "ours": 1}
    low, high = result.interval  # two images: the resampled means are -0.5, 0.75 or 2.0
    assert low == pytest.approx(-0.5) and high == pytest.approx(2.0)


def test_the_interval_of_a_constant_difference_is_that_constant():
    assert bootstrap_interval([1.5] * 7) == (1.5, 1.5)


def test_the_interval_matches_the_normal_approximation_on_many_images():
    differences = list(np.random.default_rng(4).normal(1.0, 2.0, size=400))
    low, high = bootstrap_interval(differences, resamples=20_000, seed=1)
    mean = statistics.fmean(differences)
    half = 1.96 * statistics.stdev(differences) / len(differences) ** 0.5
    assert low < mean < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.08)
    assert bootstrap_interval(differences, resamples=20_000, seed=1) == (low, high)


def test_no_common_draw_and_bad_settings_are_clear_errors():
    with pytest.raises(PairingError, match="share no"):
        compare({("a", 0): 1.0}, {("a", 1): 1.0})
    with pytest.raises(PairingError, match="confidence"):
        bootstrap_interval([1.0], confidence=1.5)


def test_report_pairs_two_methods_of_a_seed_sweep(tmp_path, capsys):
    sweep = tmp_path / "multirun" / "study"
    values = {("sd", 0): (20.0, 30.0), ("sd", 1): (22.0, 30.0), ("ours", 0): (21.0, 29.0)}
    values[("ours", 1)] = (25.0, 30.0)
    for (method, seed), (im1, im2) in values.items():
        overrides = [f"+exp={method}", f"seed={seed}", "logger=none"]
        images = [
            (name, "ok", scores(psnr, 0.5, seed=seed))
            for name, psnr in (("im1", im1), ("im2", im2))
        ]
        fake_job(sweep, f"{method}{seed}", method, overrides, images)
    out = tmp_path / "report"
    code = main([str(sweep), "--out", str(out), "--no-figures", "--paired", "sd", "ours"])
    assert code == 0
    paired = json.loads((out / "paired.json").read_text())
    assert paired["difference"] == pytest.approx(0.75)
    assert (paired["images"], paired["draws"], paired["wins"], paired["losses"]) == (2, 4, 1, 1)
    assert [row["image"] for row in paired["per_image"]] == ["im1", "im2"]
    assert "## Paired comparison" in (out / "results.md").read_text()
    assert "**ours** − **sd**, psnr: +0.750 dB" in capsys.readouterr().out
    code = main([str(sweep), "--out", str(out), "--no-figures", "--paired", "sd", "nope"])
    assert code == 2
    assert "no method 'nope'; methods found: ours, sd" in capsys.readouterr().err
