"""Detection-gap records, the calibration command, and a real early-stopped run."""

import json
import subprocess
import sys

import pytest
from conftest import PROJECT, TINY_DEMO, TINY_OVERRIDES

from weakdeblur.calibrate import Rule, calibrate, load_traces, main, replay
from weakdeblur.detection import peak, stopping_record

HISTORY = [
    {"iteration": 10.0, "psnr": 20.0, "ssim": 0.5, "stop_x": 3.0},
    {"iteration": 20.0, "psnr": 25.0, "ssim": 0.7, "stop_x": 2.0},
    {"iteration": 30.0, "psnr": 24.0, "ssim": 0.8, "stop_x": 1.0},
]


def test_peak_and_stopping_record():
    assert peak(HISTORY) == {"psnr": 25.0, "ssim": 0.7, "iteration": 20.0}
    assert peak([{"iteration": 1.0, "loss": 1.0}]) is None
    record = stopping_record(HISTORY, budget=50, stop_iteration=30, returned_psnr=23.5, policy="p")
    assert record["iterations_saved"] == 20 and record["stop_iteration"] == 30
    assert record["peak_psnr"] == 25.0 and record["peak_iteration"] == 20
    assert record["peak_ssim"] == 0.7
    assert record["detection_gap"] == pytest.approx(1.5)
    assert record["stopping_policy"] == "p" and record["stopping_statistics"] == {"stop_x": 1.0}
    blind = stopping_record([{"iteration": 50.0, "loss": 0.1}], 50, 50)
    assert blind == {"budget": 50, "stop_iteration": 50, "iterations_saved": 0}


# ---------------------------------------------------------------- calibration

PEAKS = {"a": 300, "b": 500, "c": 700}
BUDGET = 1000


def write_run(folder, peak_at, stopped_early=False, statistic="stop_consistency"):
    """A fake full-budget run: PSNR peaks at ``peak_at``; E halves every 100 iterations and
    crosses 0.3 exactly there."""
    history = [
        {
            "iteration": float(it),
            "psnr": 30.0 - abs(it - peak_at) / 100,
            statistic: 0.3 * 2 ** ((peak_at - it) / 100),
        }
        for it in range(100, BUDGET + 1, 100)
    ]
    folder.mkdir(parents=True)
    (folder / "history.json").write_text(json.dumps(history))
    metrics = {
        "status": "ok",
        "iterations": BUDGET,
        "budget": BUDGET,
        "stopped_early": stopped_early,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def runs(tmp_path):
    for name, at in PEAKS.items():
        write_run(tmp_path / "sweep" / f"seed={name}" / "demo", at)
    write_run(tmp_path / "sweep" / "early" / "demo", 400, stopped_early=True)
    return tmp_path / "sweep"


def test_replay_follows_eq7(runs):
    traces, skipped = load_traces([runs], "stop_consistency")
    assert len(traces) == 3 and len(skipped) == 1 and "stopped early" in skipped[0]
    trace = next(t for t in traces if t.peak_iteration == 500)
    assert trace.cadence() == 100
    assert replay(trace, Rule(0.3, 1, 100, False), first_allowed=200) == (500, 30.0)
    assert replay(trace, Rule(0.3, 2, 100, False), first_allowed=200) == (600, 29.0)
    assert replay(trace, Rule(0.3, 1, 200, False), first_allowed=200) == (600, 29.0)
    assert replay(trace, Rule(0.3, 1, 100, False), first_allowed=800) == (800, 27.0)
    assert replay(trace, Rule(0.001, 1, 100, False), first_allowed=0) == (1000, 25.0)
    # relative: first value 0.3 · 16 = 4.8; t = 0.07 → τ = 0.336, first reached at 500
    assert replay(trace, Rule(0.07, 1, 100, True), first_allowed=0) == (500, 30.0)
    assert replay(trace, Rule(0.07, 1, 200, True), first_allowed=0) == (600, 29.0)


def test_calibration_finds_the_rule_that_stops_at_every_peak(runs):
    traces, _ = load_traces([runs], "stop_consistency")
    outcomes = calibrate(traces, consecutive=(1, 2, 3))
    best = outcomes[0]
    assert best.mean_gap == pytest.approx(0.0)
    assert (best.rule.consecutive, best.rule.check_every, best.rule.relative) == (1, 100, False)
    assert best.rule.threshold == pytest.approx(0.45)  # between the observed 0.3 and 0.6
    assert best.mean_iterations == pytest.approx(500) and best.mean_saved == pytest.approx(500)
    # under a tighter iteration budget the zero-gap rule is out, and every kept rule fits it
    limited = calibrate(traces, consecutive=(1, 2, 3), max_mean_iterations=400)
    assert limited and all(o.mean_iterations <= 400 for o in limited)
    assert limited[0].mean_gap > 0


def test_calibrate_command_prints_the_table_and_writes_the_choice(runs, tmp_path, capsys):
    choice = tmp_path / "choice.json"
    assert main([str(runs), "--consecutive", "1,2", "--output", str(choice)]) == 0
    out = capsys.readouterr().out
    assert "fixed budget" in out and "oracle" in out
    assert "stopping.threshold=0.45 stopping.relative=false stopping.consecutive=1" in out
    saved = json.loads(choice.read_text())
    assert saved["mean_gap"] == pytest.approx(0.0) and saved["rule"]["check_every"] == 100
    assert main([str(tmp_path / "missing")]) == 2
    assert main([str(runs), "--statistic", "stop_nothing"]) == 2
    assert main([str(runs), "--check-every", "150"]) == 2


# ---------------------------------------------------------------- a real run


def test_consistency_run_stops_early_and_reports_the_saving(tmp_path):
    output = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "weakdeblur.run",
            *TINY_OVERRIDES,
            *TINY_DEMO,
            f"hydra.run.dir={output}",
            "supervisor=identity",
            "stopping=consistency",
            "stopping.threshold=1.0",  # E = L1(ŷ, y) <= 1 always: stops as soon as allowed
            "stopping.consecutive=2",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    folder = next(p for p in output.iterdir() if p.is_dir() and not p.name.startswith("."))
    metrics = json.loads((folder / "metrics.json").read_text())
    # 40 iterations, checks every 10, minimum 20% = 8: checks 10 and 20 count → stop at 20
    assert metrics["stopped_early"] is True and metrics["stop_iteration"] == 20
    assert metrics["budget"] == 40 and metrics["iterations_saved"] == 20
    assert metrics["stopping_policy"] == "consistency"
    assert metrics["stopping_statistics"]["stop_consistency_count"] == 2
    assert metrics["detection_gap"] == pytest.approx(metrics["peak_psnr"] - metrics["psnr"])
    assert metrics["peak_iteration"] in (10, 20)
    history = json.loads((folder / "history.json").read_text())
    assert [row["iteration"] for row in history] == [10, 20]
    assert all("stop_consistency" in row for row in history)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["mean"]["iterations_saved"] == 20
