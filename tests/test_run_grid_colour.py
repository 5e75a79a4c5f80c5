"""End to end through ``python -m weakdeblur.run``: the grid model on the synthetic
non-uniform set, and colour images (``color=rgb`` and ``color=y``)."""

import json
import subprocess
from pathlib import Path

import imageio.v3 as iio
from conftest import TINY_DEMO, TINY_OVERRIDES, run_weakdeblur

ARTEFACTS = [
    "x.png",
    "k.png",
    "k.pt",
    "y_hat.png",
    "blurry.png",
    "sharp.png",
    "metrics.json",
    "history.json",
]

TINY_NONUNIFORM = [
    "+exp=nonuniform",
    "generator=grid_small",
    "physics.grid=[2,2]",
    "data.size=40",
    "data.resize=80",
    "data.true_kernel_size=5",
    "data.kernel_size=7",
    "data.scenes=[camera]",
]


def run(output: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_weakdeblur(*TINY_OVERRIDES, f"hydra.run.dir={output}", *overrides)


def only_folder(output: Path) -> Path:
    folders = [p for p in output.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1
    for name in ARTEFACTS:
        assert (folders[0] / name).is_file(), name
    return folders[0]


def test_tiny_grid_run_on_the_nonuniform_set(tmp_path):
    done = run(tmp_path / "out", *TINY_NONUNIFORM, "optim.iterations=20", "supervisor=identity")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = only_folder(tmp_path / "out")
    assert folder.name == "camera40_camera_s0"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["iterations"] == 20
    assert len(metrics["kernel_error_cells"]) == 4 and 0 <= metrics["kernel_error"] < 2
    assert (
        "psnr" in metrics
        and "kernel_smoothness" in json.loads((folder / "history.json").read_text())[0]
    )
    assert iio.imread(folder / "k.png").shape == (2 * 7 + 1, 2 * 7 + 1)  # the 2x2 mosaic
    assert iio.imread(folder / "x.png").shape == (40, 40)
    # the supervisor's plumbing is unchanged by the grid model: x̄ = g(y) is saved and scored
    assert (folder / "x_bar.png").is_file() and "supervised_psnr" in metrics


def test_tiny_rgb_and_y_runs_on_a_colour_image(tmp_path):
    for color in ("rgb", "y"):
        output = tmp_path / color
        done = run(
            output, *TINY_DEMO, "data.image=astronaut", f"color={color}", "optim.iterations=10"
        )
        assert done.returncode == 0, done.stderr[-3000:]
        folder = only_folder(output)
        for name in ("x.png", "y_hat.png", "blurry.png", "sharp.png"):
            assert iio.imread(folder / name).shape == (40, 40, 3), (color, name)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["status"] == "ok" and "psnr" in metrics and "kernel_error" in metrics
    done = run(tmp_path / "bad", *TINY_DEMO, "color=cmyk")
    assert done.returncode == 2 and "color must be one of" in done.stderr + done.stdout
