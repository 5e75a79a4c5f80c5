"""Two-job sweeps through real launcher processes (joblib, submitit local), W&B offline files."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT, TINY_DEMO, TINY_OVERRIDES

from weakdeblur.report import collect

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def sweep(root: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "weakdeblur.run",
            "-m",
            *TINY_OVERRIDES,
            *TINY_DEMO,
            "optim.iterations=20",
            "threads=1",
            f"hydra.sweep.dir={root}",
            "seed=0,1",
            *overrides,
        ],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


def jobs(root: Path) -> dict[str, dict]:
    """Sweep sub-folder name → the metrics.json of its one image."""
    found = {}
    for job in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        (metrics,) = job.glob("*/metrics.json")
        found[job.name] = json.loads(metrics.read_text())
    return found


def wandb_records(path: Path) -> list:
    """The protobuf records of a ``.wandb`` file (LevelDB-style log: 32 KiB blocks,
    7-byte chunk headers: CRC, length, type FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, payload, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        position += 7
        payload += data[position : position + length]
        position += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            records.append(record)
            payload = b""
    return records


def test_joblib_two_job_sweep_with_offline_wandb_runs(tmp_path):
    root = tmp_path / "sweep"
    done = sweep(
        root,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "logger=wandb",
        "optim.snapshot_every=10",
        env={"WANDB_MODE": "offline"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Joblib" in done.stdout + done.stderr
    found = jobs(root)
    # readable override-based names, without the neutral settings (logger, threads, ...)
    names = sorted(found)
    assert [name.rsplit(",seed=", 1)[-1].split(",")[0] for name in names] == ["0", "1"]
    assert all("optim.iterations=20" in name for name in names)
    assert not any("logger" in name or "threads" in name or "progress" in name for name in names)
    assert [m["status"] for m in found.values()] == ["ok", "ok"]
    assert {m["seed"] for m in found.values()} == {0, 1}

    # one offline W&B run per (job, image), each finished, with tags and summary metrics
    runs = sorted(root.glob("*/wandb/offline-run-*/*.wandb"))
    assert len(runs) == 2
    for run_file, metrics in zip(runs, found.values(), strict=True):
        records = wandb_records(run_file)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert run.run_group == "default" and run.job_type == "camera40_k5_s0"
        assert {"data:demo", "supervisor:none", "stopping:fixed"} <= set(run.tags)
        summary = {
            item.key: json.loads(item.value_json)
            for r in records
            if r.WhichOneof("record_type") == "summary"
            for item in r.summary.update
            if item.key
        }
        for key in ("psnr", "ssim", "kernel_error", "error_ratio", "stop_psnr", "seconds"):
            assert summary[key] == pytest.approx(metrics[key]), key
        assert summary["iterations"] == 20 and summary["status"] == "ok"
        (exit_record,) = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
        assert exit_record.exit_code == 0
        media = {p.name.split("_")[0] for p in run_file.parent.glob("files/media/images/final/*")}
        assert {"x", "k", "y"} <= media  # y.png and y_hat.png both start with "y"
        assert any(run_file.parent.glob("files/media/images/final/y_hat_*"))

    # the report reads the real sweep: one experiment per seed
    labels = {r.run.label for r in collect([root])}
    assert labels == {"default seed=0", "default seed=1"}


def test_submitit_local_two_job_sweep(tmp_path):
    root = tmp_path / "sweep"
    done = sweep(root, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    assert done.returncode == 0, done.stderr[-3000:]
    found = jobs(root)
    assert len(found) == 2 and [m["status"] for m in found.values()] == ["ok", "ok"]
    assert {m["seed"] for m in found.values()} == {0, 1}
    # each job ran in its own submitit process, with its own job folder and logs
    logs = sorted((root / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2 and logs[0].parent != logs[1].parent


def test_path_values_do_not_nest_sweep_folders():
    from omegaconf import OmegaConf

    import weakdeblur.run  # noqa: F401  (registers the resolver)

    config = OmegaConf.create({"o": "data.root=/a/b,seed=1", "d": "${path_safe:${o}}"})
    name = config.d
    assert name == "data.root=_a_b,seed=1"


def test_long_override_lists_give_short_distinct_folder_names():
    from weakdeblur.run import FOLDER_NAME_LIMIT, path_safe

    overrides = ",".join(f"stopping.members.rule{i}.threshold=0.{i}" for i in range(12))
    first, second = path_safe(overrides + ",seed=1"), path_safe(overrides + ",seed=2")
    assert len(first.encode()) <= FOLDER_NAME_LIMIT and len(second.encode()) <= FOLDER_NAME_LIMIT
    assert first != second and first.startswith("stopping.members.rule0.threshold=0.0,")
    assert path_safe(overrides + ",seed=1") == first  # stable: resume finds the same folder


def test_a_job_with_failed_images_does_not_stop_the_sweep(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    root = tmp_path / "sweep"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "weakdeblur.run",
            "-m",
            "data=folder",
            f"data.root={folder}",
            "logger=none",
            "progress=false",
            f"hydra.sweep.dir={root}",
            "seed=0,1",
        ],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    summaries = sorted(root.glob("*/summary.json"))
    assert len(summaries) == 2  # the second job ran after the first one's failure
    assert all(json.loads(p.read_text())["failed"] == ["truncated"] for p in summaries)
    assert "some images failed" in done.stderr
