import subprocess
import sys
from functools import partial

import pytest
import torch
from conftest import PROJECT, test_device

from weakdeblur.baseline import baseline_loop
from weakdeblur.bench import TINY_WIDTHS
from weakdeblur.data.sample import Sample
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import FidelityLoss
from weakdeblur.solver import InputSettings, OptimSettings, Solver


def test_benchmark_runs_in_tiny_mode():
    done = subprocess.run(
        [sys.executable, "-m", "weakdeblur.bench", "--tiny", "--iterations", "3", "--threads", "1"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("device=")
    rows = [line.split() for line in lines if line.lstrip().startswith("48x48")]
    # image kernel variant s/iter x-base x-eager peak first conv-GF/s outside-conv
    assert [row[2] for row in rows] == ["baseline", "eager", "channels_last"]
    assert float(rows[0][4]) == 1.0 and float(rows[1][5]) == 1.0  # the ratios' references
    assert all(float(row[3]) != 0 and float(row[6]) > 0 for row in rows)  # s/iter, peak memory
    # conv GF/s and the share outside convolutions (the tiny network's 1x1/3x3 convolutions
    # are a small part of its time: well above 10 % outside, and never all of it)
    assert all(float(row[8]) > 0 and 10 < float(row[9].rstrip("%")) < 100 for row in rows)
    assert "profiler_start" not in done.stderr
    part2 = next(index for index, line in enumerate(lines) if line.startswith("part 2"))
    batches = [line.split() for line in lines[part2 + 2 :] if line.split()[0].isdigit()]
    assert [row[0] for row in batches] == ["1", "2"] and float(batches[0][3]) == 1.0


@pytest.mark.device
def test_baseline_loop_gives_the_solver_losses_under_reference_seeds():
    """The bench's plain loop and the solver (seed_mode=reference) compute the same iterations:
    MSE for 3 iterations, then 1 - SSIM, learning rate halved at 2, 4 and 5."""
    iterations = 6
    blurry = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    solver = Solver(
        partial(SkipNetwork, **TINY_WIDTHS),
        partial(KernelMLP, hidden=64),
        fidelity=FidelityLoss(0.5),
        optim=OptimSettings(iterations=iterations, log_every=1, snapshot_every=0),
        inputs=InputSettings(),
        device=test_device(),
    )
    ours = solver.run(Sample("b", blurry, (7, 7)), seed=5, seed_mode="reference")
    plain = baseline_loop(
        blurry,
        (7, 7),
        iterations,
        switch_iteration=solver.fidelity.switch_iteration(iterations),
        milestones=solver.optim.milestone_iterations(),
        image_network=TINY_WIDTHS,
        kernel_hidden=64,
        device=test_device(),
    )
    assert solver.optim.milestone_iterations() == [2, 4, 5]
    solver_losses = torch.tensor([row["loss"] for row in ours.history])
    plain_losses = torch.tensor([row["loss"] for row in plain.history])
    assert len(plain_losses) == iterations
    assert plain_losses[:3].max() < 0.2 < plain_losses[3:].min()  # MSE, then 1 - SSIM of noise
    torch.testing.assert_close(plain_losses, solver_losses, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(plain.kernel, ours.kernel, rtol=1e-4, atol=1e-7)


def test_time_to_result_compares_candidates_with_the_reference_run():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "weakdeblur.time_to_result",
            "--tiny",
            "--candidate",
            "optim.iterations=15",
            "--candidate",
            "optim.iterations=10 solver.channels_last=true",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("configuration"))
    rows = lines[header + 1 : header + 4]
    assert rows[0].split()[0] == "selfdeblur" and rows[0].split()[2] == "30"
    assert float(rows[0].split()[4]) == 1.0  # the reference's own speed-up
    assert [row.split()[-5] for row in rows[1:]] == ["15", "10"]  # the budgets are honoured
    reference_seconds = float(rows[0].split()[1])
    for row in rows[1:]:  # speed-up = the reference's seconds / the candidate's (no timing claim)
        seconds, speed_up = float(row.split()[-6]), float(row.split()[-3])
        # both seconds are printed to 0.1 s (tiny runs take about a second): the speed-up
        # (printed to 0.01) must lie in the range those roundings allow
        low = (reference_seconds - 0.05) / (seconds + 0.05)
        high = (reference_seconds + 0.05) / max(seconds - 0.05, 1e-9)
        assert low - 0.005 <= speed_up <= high + 0.005, (speed_up, reference_seconds, seconds)
    assert lines[-1].startswith("time to result: ")
