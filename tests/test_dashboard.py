"""weakdeblur.dashboard: every key its panels name is one an offline W&B run really logs; the
sweep report's table is weakdeblur.report's; saving offline fails in one line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from conftest import TINY_DEMO, TINY_OVERRIDES, run_weakdeblur

pytest.importorskip("wandb_workspaces")

from weakdeblur import dashboard, report  # noqa: E402
from weakdeblur.runtime.tracking import FINAL_IMAGES, SUMMARY_COLUMNS  # noqa: E402

EXPERIMENTS = ("weak_only", "weak_rec_es")
WANDB_BLOCK = 32768  # W&B's run file: LevelDB log format, 7-byte file header, 32 KiB blocks


def wandb_records(path: Path):
    """The protobuf records of an offline run's ``run-<id>.wandb`` file (wandb-core writes it;
    wandb ≥ 0.2x has no Python reader any more)."""
    from wandb.proto import wandb_internal_pb2

    data, position, pending = path.read_bytes(), 7, b""
    while position + 7 <= len(data):
        if WANDB_BLOCK - position % WANDB_BLOCK < 7:  # block trailer
            position += WANDB_BLOCK - position % WANDB_BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk, position = data[position + 7 : position + 7 + length], position + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL, FIRST | MIDDLE, LAST
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _flatten(prefix: str, value, out: set[str]) -> None:
    out.add(prefix)
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)


def logged_keys(run_file: Path) -> dict[str, set[str]]:
    """history, summary, media and (flattened) config keys of one offline run."""
    keys: dict[str, set[str]] = {
        "history": set(),
        "summary": set(),
        "media": set(),
        "config": set(),
    }
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if key.endswith("/_type") and "image" in item.value_json:
                    keys["media"].add(key.removesuffix("/_type"))
                elif "/" not in key:
                    keys["history"].add(key)
        elif kind == "summary":
            keys["summary"] |= {
                item.key or "/".join(item.nested_key) for item in record.summary.update
            }
        elif kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            for item in updates:
                _flatten(item.key, json.loads(item.value_json), keys["config"])
    return keys


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two experiments of a tiny offline W&B sweep; the MAP supervisor gives x̄ and k̄."""
    folder = tmp_path_factory.mktemp("dashboard") / "sweep"
    result = run_weakdeblur(
        "-m",
        f"+exp={','.join(EXPERIMENTS)}",
        "supervisor=map",
        *TINY_DEMO,
        *TINY_OVERRIDES,
        "optim.iterations=20",
        "logger=wandb",
        "threads=1",
        f"hydra.sweep.dir={folder}",
        env={"WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


@pytest.fixture(scope="module")
def logged(sweep) -> dict[str, set[str]]:
    """The keys the sweep's W&B runs logged, over all runs (a panel shows every run)."""
    files = sorted(sweep.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(files) == len(EXPERIMENTS)
    union: dict[str, set[str]] = {}
    for file in files:
        for section, keys in logged_keys(file).items():
            union.setdefault(section, set()).update(keys)
    return union


@pytest.fixture(scope="module")
def dry_run(sweep) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = dashboard.main(
            ["--entity", "E", "--project", "P", "--sweep-dir", str(sweep), "--dry-run"]
        )
    assert code == 0
    return json.loads(out.getvalue())


def test_workspace_names_only_logged_keys(dry_run, logged):
    named = dry_run["workspace"]["keys"]
    assert set(named["history"]) <= logged["history"]
    assert set(named["media"]) <= logged["media"]
    assert set(named["config"]) <= logged["config"]
    # LPIPS needs the AlexNet backbone file, off in the tiny runs (metrics.lpips=false)
    assert set(named["summary"]) - logged["summary"] <= {"lpips"}
    assert {"psnr", "ssim", "loss", "fidelity", "weak", "rec", "iteration"} <= set(named["history"])
    assert set(named["summary"]) == set(SUMMARY_COLUMNS)
    assert {f"final/{name}" for name in FINAL_IMAGES} | {"x", "k"} == set(named["media"])
    spec = json.dumps(dry_run["workspace"]["spec"])
    for view in (
        "Run History Line Plot",
        "Media Browser",
        "Parallel Coordinates Plot",
        "Run Comparer",
    ):
        assert view in spec
    assert '"grouping": [{"section": "run", "name": "group"}]' in spec  # grouped by experiment


def test_default_swept_keys_are_config_keys(logged):
    assert set(dashboard.DEFAULT_SWEPT_KEYS) <= logged["config"]


def test_report_matches_local_report(dry_run, logged, sweep, tmp_path):
    named = dry_run["report"]["keys"]
    assert set(named["history"]) <= logged["history"]
    assert set(named["media"]) <= logged["media"]
    assert set(named["summary"]) - logged["summary"] <= {"lpips"}
    out = report.report([sweep], tmp_path / "report", figures=False)
    results = (out / "results.md").read_text()
    tables = [b["text"] for b in dry_run["report"]["blocks"] if b["type"] == "MarkdownBlock"]
    assert len(tables) == 2 and all(table in results for table in tables)
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in tables[0].splitlines()
    ]
    for experiment in EXPERIMENTS:
        assert [experiment, "1 (1)"] in [row[:2] for row in rows]
    # one run set per experiment, holding exactly the W&B runs its job folder recorded
    runsets = {r["name"]: r["filters"] for r in dry_run["report"]["runsets"]}
    assert set(runsets) == set(EXPERIMENTS)
    for job in sweep.iterdir():
        if job.is_dir():
            (run_id,) = dashboard.wandb_run_ids(job)
            experiment = next(e for e in EXPERIMENTS if f"+exp={e}," in job.name)
            assert run_id in runsets[experiment]
            assert sum(run_id in filters for filters in runsets.values()) == 1


@pytest.mark.parametrize(
    "env",
    [{"WANDB_MODE": "offline"}, {"WANDB_MODE": "online", "WANDB_API_KEY": None}],
    ids=["offline", "no-key"],
)
def test_save_without_wandb_fails_in_one_line(env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    code = dashboard.main(["--entity", "E", "--project", "P"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "nothing saved" in lines[0], captured.err
    assert captured.out == ""


def test_missing_sweep_dir_is_one_line(tmp_path, capsys):
    code = dashboard.main(
        ["--entity", "E", "--project", "P", "--sweep-dir", str(tmp_path / "nope"), "--dry-run"]
    )
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"weakdeblur.dashboard: error: no such file or folder: {tmp_path / 'nope'}"
    ]


def test_runs_without_wandb_folders_are_found_by_group_and_swept_values(tmp_path):
    import wandb_workspaces.reports.v2 as wr

    run = report.Run(tmp_path, "weak_rec", {"optim.iterations": "1000", "supervisor": "map"})
    filters = dashboard._runset_filters([run], ["optim.iterations", "supervisor"])
    text = wr.Runset(entity="E", project="P", filters=filters).filters
    assert "weak_rec" in text and "optim.iterations" in text and "1000" in text
    assert "supervisor" not in text  # a config group: W&B holds a dict there, not "map"
    assert dashboard.scalar_keys(["seed", "stopping", "hydra/launcher"]) == ["seed"]
