"""End-to-end through the real entry point (subprocesses)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT, TINY_DEMO, TINY_OVERRIDES, run_weakdeblur

ARTEFACTS = [
    "x.png",
    "k.png",
    "y_hat.png",
    "blurry.png",
    "sharp.png",
    "metrics.json",
    "history.csv",
    "history.json",
]


def run(
    output: Path, *overrides: str, env: dict | None = None, data: list[str] = TINY_DEMO
) -> subprocess.CompletedProcess:
    return run_weakdeblur(*TINY_OVERRIDES, *data, f"hydra.run.dir={output}", *overrides, env=env)


def test_tiny_end_to_end_writes_every_artefact(tmp_path):
    done = run(tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    folders = [p for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1
    for name in ARTEFACTS:
        assert (folders[0] / name).is_file(), name
    metrics = json.loads((folders[0] / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["iterations"] == 40
    for key in ("psnr", "ssim", "kernel_error", "blurry_psnr", "seconds", "seed", "environment"):
        assert key in metrics
    assert metrics["environment"]["torch"]
    history = json.loads((folders[0] / "history.json").read_text())
    assert [row["iteration"] for row in history] == [10, 20, 30, 40]
    assert "psnr" in history[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ok"] == 1 and summary["mean"]["psnr"] == pytest.approx(metrics["psnr"])
    assert "PSNR" in done.stdout and str(tmp_path / "out") in done.stdout


def test_wandb_offline_writes_a_run_directory(tmp_path):
    done = run(
        tmp_path / "out",
        "logger=wandb",
        "+exp=selfdeblur",
        "generator=small",
        "optim.iterations=20",
        "optim.log_every=10",
        "optim.snapshot_every=10",
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "false"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert any(runs[0].glob("*.wandb"))
    # logger.quiet (the default): W&B prints nothing itself, our one line says where runs go
    printed = done.stdout + done.stderr
    assert "wandb:" not in printed
    assert f"W&B offline: runs in {tmp_path / 'out' / 'wandb'}" in printed


# Missing data, unknown image names, bad and oversized images: tests/test_faults.py.


def test_diverging_image_is_marked_failed_and_keeps_its_files(tmp_path):
    done = run(tmp_path / "out", "optim.lr_image=1e30")
    assert done.returncode == 1
    assert "non-finite loss" in done.stderr + done.stdout
    metrics = json.loads(next((tmp_path / "out").glob("*/metrics.json")).read_text())
    assert metrics["status"] == "failed" and "non-finite" in metrics["message"]
    assert (tmp_path / "out" / metrics["name"] / "x.png").is_file()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failed"] == [metrics["name"]]


def test_history_is_written_while_running_and_kept_on_interrupt(tmp_path):
    """Ctrl-C mid-run: the unfinished image keeps the history logged so far."""
    import signal
    import time

    output = tmp_path / "out"
    environment = {**os.environ, "WANDB_SILENT": "true"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "weakdeblur.run",
            *TINY_OVERRIDES,
            *TINY_DEMO,
            f"hydra.run.dir={output}",
            "optim.iterations=100000",
            "optim.log_every=5",
        ],
        cwd=PROJECT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell without job control starts background jobs (`make test &`, nohup) with SIGINT
        # ignored, and Python then never raises KeyboardInterrupt: give the run the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    history = None
    deadline = time.time() + 240
    while time.time() < deadline and history is None:
        found = list(output.glob("*/history.json"))
        if found and len(json.loads(found[0].read_text())) >= 2:
            history = found[0]
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # Ctrl-C (SIGTERM: tests/test_faults.py)
    try:
        process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, _ = process.communicate()
        pytest.fail(f"the run ignored SIGINT (history found: {history}):\n{stdout[-3000:]}")
    assert history is not None, "no history appeared while the run was going"
    assert process.returncode == 130
    rows = json.loads(history.read_text())
    assert len(rows) >= 2 and [row["iteration"] for row in rows[:2]] == [5, 10]
    assert json.loads((history.parent / "metrics.json").read_text())["status"] == "interrupted"
