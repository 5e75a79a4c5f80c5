"""The local report on fake sweeps with known numbers."""

import csv
import json
import statistics

import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from weakdeblur.report import (
    MISSING,
    collect,
    main,
    per_image_rows,
    per_image_table,
    print_table,
    psnr_vs_iteration_figure,
    report,
    summarise,
    summary_table,
)


def fake_image(folder, name, status="ok", logged=(10, 20), **metrics):
    image = folder / name
    image.mkdir(parents=True)
    record = {"name": name, "status": status, **metrics}
    (image / "metrics.json").write_text(json.dumps(record))
    history = [{"iteration": float(i), "psnr": 20.0 + i / 10} for i in logged]
    (image / "history.json").write_text(json.dumps(history))
    picture = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)
    for file in ("blurry.png", "x.png", "k.png", "sharp.png"):
        iio.imwrite(image / file, picture)


def fake_job(sweep, subdir, experiment, overrides, images, logged=(10, 20)):
    job = sweep / subdir
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"experiment": experiment}))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    for name, status, metrics in images:
        fake_image(job, name, status, logged, **metrics)
    return job


def cells(line):
    """The stripped cells of one Markdown table line."""
    return [cell.strip() for cell in line.strip().removeprefix("|").removesuffix("|").split("|")]


def table_lines(text, first_header):
    """The lines of the Markdown table whose first header cell is ``first_header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def boundaries(line, separator="|"):
    return [i for i, char in enumerate(line) if char == separator]


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
    summary = {cells(line)[0]: cells(line) for line in table_lines(text, "experiment")}
    assert summary["a"][:4] == ["a", "4 (3)", "23.00 ± 3.61", "0.6667 ± 0.1528"]
    per_image = [cells(line) for line in table_lines(text, "image")]
    assert ["im3", "a", "ok", MISSING, "27.00"] in [row[:5] for row in per_image]
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


def test_a_run_of_one_logged_point_per_image_is_plotted_with_markers(tmp_path):
    fake_job(
        tmp_path / "sweep",
        "+exp=a",
        "a",
        ["+exp=a"],
        [("im1", "ok", scores(20.0, 0.5)), ("im2", "ok", scores(22.0, 0.7))],
        logged=(10,),
    )
    figure = psnr_vs_iteration_figure(collect([tmp_path / "sweep"]))
    lines = figure.axes[0].get_lines()
    assert len(lines) == 3  # two images (thin) and their mean
    for line in lines:
        assert len(line.get_xdata()) == 1
        assert line.get_visible() and line.get_marker() not in (None, "", " ", "None")
        assert line.get_markersize() > 0
    mean = max(lines, key=lambda line: line.get_alpha() or 1.0)
    assert list(mean.get_ydata()) == pytest.approx([21.0])  # 20 + 10/10 for both images
    # the point lies inside the axes, not on an edge where it would be clipped
    (x0, x1), (y0, y1) = figure.axes[0].get_xlim(), figure.axes[0].get_ylim()
    assert x0 < 10 < x1 and y0 < 21 < y1
    figure.clf()


def test_long_curves_stay_plain_lines(tmp_path):
    fake_job(
        tmp_path / "sweep",
        "+exp=a",
        "a",
        ["+exp=a"],
        [("im1", "ok", scores(20.0, 0.5))],
        logged=range(0, 500, 10),
    )
    figure = psnr_vs_iteration_figure(collect([tmp_path / "sweep"]))
    assert all(line.get_marker() in (None, "", " ", "None") for line in figure.axes[0].get_lines())
    figure.clf()


def test_per_image_table_has_a_mean_row_over_the_present_values(two_sweeps):
    images = per_image_rows(collect(list(two_sweeps)))
    rows = {(row[0], row[1]): row for row in map(cells, per_image_table(images)[2:])}
    header = cells(per_image_table(images)[0])
    psnr, lpips, iterations = (header.index(h) for h in ("PSNR (dB)", "LPIPS", "iterations"))
    # a: 20, 22, 27 present, im4 (interrupted) has none
    assert float(rows["mean", "a"][psnr]) == pytest.approx(statistics.fmean([20.0, 22.0, 27.0]))
    assert float(rows["mean", "a"][lpips]) == pytest.approx(0.2)
    assert rows["mean", "a"][2] == "3/4 ok"
    # b: only im1 has values; no image of b has an LPIPS
    assert float(rows["mean", "b"][psnr]) == pytest.approx(30.0)
    assert rows["mean", "b"][iterations] == "40"
    assert rows["mean", "b"][lpips] == MISSING
    assert rows["im2", "b"][psnr] == MISSING
    # the mean rows come last, after every image
    assert [key for key in rows if key[0] == "mean"] == list(rows)[-2:]


def test_missing_values_keep_the_columns_of_the_markdown_tables(two_sweeps):
    results = collect(list(two_sweeps))
    for table in (summary_table(summarise(results)), per_image_table(per_image_rows(results))):
        header, rule, *body = table
        columns = list(zip(*map(cells, body), strict=True))
        assert any(MISSING in column and set(column) != {MISSING} for column in columns)
        for line in [rule, *body]:
            assert len(cells(line)) == len(cells(header))
            assert len(line) == len(header) and boundaries(line) == boundaries(header)
        # numbers and the missing mark are right-aligned: they end at the column's right edge
        edges = boundaries(header)
        for line in body:
            for cell_end in edges[4:]:
                assert line[cell_end - 2] != " "


def test_missing_values_keep_the_columns_of_the_printed_table(two_sweeps, capsys):
    print_table(summarise(collect(list(two_sweeps))))
    lines = capsys.readouterr().out.splitlines()
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 2 and MISSING in cells(body[1].replace("│", "|"))  # b has no LPIPS
    for line in body:
        assert len(line) == len(body[0]) and boundaries(line, "│") == boundaries(body[0], "│")


def test_an_output_folder_under_a_file_is_one_line(tmp_path, two_sweeps, capsys):
    (tmp_path / "file.txt").write_text("x")
    assert main([str(tmp_path / "multirun"), "--out", str(tmp_path / "file.txt" / "rep")]) == 2
    error = capsys.readouterr().err
    assert error.strip() == (
        f"error: output folder {tmp_path / 'file.txt' / 'rep'} cannot be created: "
        f"{tmp_path / 'file.txt'} is not a folder"
    )
