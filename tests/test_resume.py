"""Resume skips finished images and redoes the rest (SIGTERM mid-image: tests/test_faults.py)."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import CONF, TINY_OVERRIDES
from hydra import compose, initialize_config_dir

from weakdeblur.run import run_images
from weakdeblur.runtime.resume import ARTEFACTS, completed_record, fingerprint


def smooth_image(path, size, seed):
    rng = np.random.default_rng(seed)
    noise = rng.random((size // 4, size // 4))
    image = np.kron(noise, np.ones((4, 4)))  # blocky: edges a kernel can explain
    iio.imwrite(path, (image * 255).astype(np.uint8))


def folder_data(tmp_path, sizes=(32, 32)):
    folder = tmp_path / "blurry"
    folder.mkdir()
    for index, size in enumerate(sizes):
        smooth_image(folder / f"{'ab'[index]}.png", size, index)
    return ["data=folder", f"data.root={folder}", "data.kernel_size=5"]


@pytest.fixture(autouse=True)
def one_thread():
    """In-process runs on one thread, as the subprocesses (a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compose_tiny(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY_OVERRIDES, *overrides])


def status(output, name):
    return json.loads((output / name / "metrics.json").read_text())["status"]


def test_resume_skips_a_finished_image_and_redoes_an_unfinished_one(tmp_path):
    data = folder_data(tmp_path)
    output = tmp_path / "out"
    assert run_images(compose_tiny(*data), output) == 0
    assert status(output, "a") == status(output, "b") == "ok"
    for name in ARTEFACTS:
        assert (output / "a" / name).is_file()
    finished = (output / "a" / "x.png").stat().st_mtime_ns
    # b was cut short: its record says interrupted
    record = json.loads((output / "b" / "metrics.json").read_text())
    (output / "b" / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))
    unfinished = (output / "b" / "x.png").stat().st_mtime_ns

    assert run_images(compose_tiny(*data), output) == 0
    assert (output / "a" / "x.png").stat().st_mtime_ns == finished  # skipped
    assert status(output, "b") == "ok"
    assert (output / "b" / "x.png").stat().st_mtime_ns > unfinished  # redone
    summary = json.loads((output / "summary.json").read_text())
    assert summary["ok"] == 2
    assert [r.get("resumed", False) for r in summary["per_image"]] == [True, False]
    assert summary["mean"]["iterations"] == 40

    # resume=false redoes everything, and keeps the finished results it replaces
    first = json.loads((output / "a" / "metrics.json").read_text())
    assert run_images(compose_tiny(*data, "resume=false"), output) == 0
    assert (output / "a" / "x.png").stat().st_mtime_ns > finished
    kept = output / ".superseded" / first["config_fingerprint"] / "a" / "metrics.json"
    assert json.loads(kept.read_text()) == first


def test_redoing_with_another_configuration_keeps_the_old_result(tmp_path):
    data = folder_data(tmp_path, sizes=(32,))
    output = tmp_path / "out"
    assert run_images(compose_tiny(*data), output) == 0
    old = json.loads((output / "a" / "metrics.json").read_text())
    assert run_images(compose_tiny(*data, "seed=1"), output) == 0
    new = json.loads((output / "a" / "metrics.json").read_text())
    assert new["status"] == "ok" and new["config_fingerprint"] != old["config_fingerprint"]
    kept = output / ".superseded" / old["config_fingerprint"] / "a"
    assert json.loads((kept / "metrics.json").read_text()) == old
    assert sorted(p.name for p in kept.iterdir()) == sorted(
        p.name for p in (output / "a").iterdir() if p.name != ".lock"
    )
    assert not (kept / ".lock").exists()


def test_a_finished_image_with_another_configuration_or_missing_files_is_redone(tmp_path):
    data = folder_data(tmp_path, sizes=(32,))
    output = tmp_path / "out"
    cfg = compose_tiny(*data)
    assert run_images(cfg, output) == 0
    from omegaconf import OmegaConf

    same = fingerprint(OmegaConf.to_container(cfg, resolve=True))
    other = fingerprint(OmegaConf.to_container(compose_tiny(*data, "seed=1"), resolve=True))
    neutral = fingerprint(
        OmegaConf.to_container(
            compose_tiny(*data, "threads=1", "data.images=[a]", "solver.batch_size=4"), resolve=True
        )
    )
    compiled = fingerprint(
        OmegaConf.to_container(compose_tiny(*data, "solver.channels_last=true"), resolve=True)
    )
    assert same != other and same == neutral and compiled != same
    assert completed_record(output / "a", same)["status"] == "ok"
    assert completed_record(output / "a", other) is None
    (output / "a" / "k.pt").unlink()
    assert completed_record(output / "a", same) is None


# SIGTERM mid-image and the re-run that resumes: tests/test_faults.py.


def test_only_a_run_folder_holding_nothing_but_hydras_files_is_discarded(tmp_path):
    from weakdeblur.runtime.resume import discard_unused_run_folder

    empty = tmp_path / "empty"
    (empty / ".hydra").mkdir(parents=True)
    (empty / ".hydra" / "config.yaml").write_text("a: 1\n")
    (empty / "run.log").write_text("")
    assert discard_unused_run_folder(empty, ".hydra") and not empty.exists()
    used = tmp_path / "used"
    (used / ".hydra").mkdir(parents=True)
    (used / "camera" / "metrics.json").parent.mkdir()
    (used / "camera" / "metrics.json").write_text("{}")
    assert not discard_unused_run_folder(used, ".hydra")
    assert (used / "camera" / "metrics.json").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    assert not discard_unused_run_folder(mine, ".hydra") and (mine / "notes.txt").is_file()
