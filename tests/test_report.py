"""The local report on fake sweeps with known numbers."""

import csv
import json
import statistics

import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from weakdeblur.report import collect, main, report


def fake_image(folder, name, status="ok", **metrics):
    image = folder / name
    image.mkdir(parents=True)
    record = {"name": name, "status": status, **metrics}
    (image / "metrics.json").write_text(json.dumps(record))
    history = [{"iteration": float(i), "psnr": 20.0 + i / 10} for i in (10, 20)]
    (image / "history.json").write_text(json.dumps(history))
    picture = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)
    for file in ("blurry.png", "x.png", "k.png", "sharp.png"):
        iio.imwrite(image / file, picture)


def fake_job(sweep, subdir, experiment, overrides, images):
    job = sweep / subdir
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"experiment": experiment}))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    for name, status, metrics in images:
        fake_image(job, name, status, **metrics)
    return job


def scores(psnr, ssim, iterations=100, seconds=2.0, **extra):
    return {
        "psnr": psnr,
        "ssim": ssim,
        "error_ratio": psnr / 20,
        "kernel_error": 0.5,
        "iterations": iterations,
        "seconds": seconds,
        **extra,
    }


@pytest.fixture
def two_sweeps(tmp_path):
    first, second = tmp_path / "multirun" / "one", tmp_path / "multirun" / "two"
    fake_job(
        first,
        "+exp=a,data=levin",
        "a",
        ["+exp=a", "data=levin", "logger=none"],
        [("im1", "ok", scores(20.0, 0.5, lpips=0.3)), ("im2", "ok", scores(22.0, 0.7, lpips=0.1))],
    )
    fake_job(
        first,
        "+exp=b,data=levin",
        "b",
        ["+exp=b", "data=levin", "logger=none"],
        [("im1", "ok", scores(30.0, 0.9, iterations=40)), ("im2", "failed", {"message": "nan"})],
    )
    # the second sweep adds an image to experiment a (a different image subset, merged)
    fake_job(
        second,
        "+exp=a,data.images=[im3],data=levin",
        "a",
        ["+exp=a", "data=levin", "data.images=[im3]", "threads=1"],
        [("im3", "ok", scores(27.0, 0.8, lpips=0.2)), ("im4", "interrupted", {})],
    )
    return first, second


def test_report_on_two_fake_sweeps_gives_the_right_means_and_files(two_sweeps, tmp_path):
    out = report(list(two_sweeps), tmp_path / "report")
    rows = {row["experiment"]: row for row in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"a", "b"}
    a, b = rows["a"], rows["b"]
    assert (int(a["images"]), int(a["ok"]), int(a["unfinished"])) == (4, 3, 1)
    assert float(a["psnr_mean"]) == pytest.approx(23.0)
    assert float(a["psnr_std"]) == pytest.approx(statistics.stdev([20.0, 22.0, 27.0]))
    assert float(a["ssim_mean"]) == pytest.approx(2.0 / 3.0)
    assert float(a["lpips_mean"]) == pytest.approx(0.2)
    assert float(a["error_ratio_mean"]) == pytest.approx(23.0 / 20)
    assert (int(b["images"]), int(b["ok"]), int(b["failed"])) == (2, 1, 1)
    assert float(b["psnr_mean"]) == pytest.approx(30.0) and b["psnr_std"] == ""
    assert float(b["iterations_mean"]) == 40
    per_image = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(per_image) == 6
    assert {(r["experiment"], r["image"], r["status"]) for r in per_image} >= {
        ("b", "im2", "failed"),
        ("a", "im4", "interrupted"),
    }
    text = (out / "results.md").read_text()
    assert "| a | 4 (3) | 23.00 ± 3.61 | 0.6667 ± 0.1528 |" in text
    assert "| im3 | a | ok | – | 27.00 |" in text
    for figure in ("psnr_vs_iteration.png", "stop_iterations.png", "montage_im1.png"):
        assert (out / figure).stat().st_size > 1000
        assert f"({figure})" in text
    assert iio.imread(out / "montage_im1.png").shape[0] > 100


def test_overrides_that_differ_name_the_experiments(tmp_path):
    sweep = tmp_path / "sweep"
    for iterations, psnr in ((1000, 25.0), (2000, 26.0)):
        fake_job(
            sweep,
            f"+exp=a,optim.iterations={iterations}",
            "a",
            ["+exp=a", f"optim.iterations={iterations}", "data=levin"],
            [("im1", "ok", scores(psnr, 0.8))],
        )
    labels = {r.run.label: r.value("psnr") for r in collect([sweep])}
    assert labels == {"a optim.iterations=1000": 25.0, "a optim.iterations=2000": 26.0}


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no results found" in capsys.readouterr().err


def test_cli_writes_into_path_report_by_default(two_sweeps, capsys):
    first, _ = two_sweeps
    assert main([str(first)]) == 0
    assert (first / "report" / "results.md").is_file()
    assert "PSNR" in capsys.readouterr().out
    # the report folder is not mistaken for results the next time
    assert main([str(first)]) == 0
