"""`python -m weakdeblur.evaluate_supervisor`: the g-quality table."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

from conftest import PROJECT


def evaluate_supervisor(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "weakdeblur.evaluate_supervisor", *arguments],
        cwd=PROJECT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_map_table_on_the_demo(tmp_path):
    completed = evaluate_supervisor("supervisor=map", "data=demo", f"out={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [row["image"] for row in rows] == ["camera80_k11_s0"]
    row = {key: float(value) for key, value in rows[0].items() if key != "image"}
    # the 80-px demo with 1% noise is hard for a MAP estimate: sharper (SSIM), PSNR about even
    assert row["xbar_ssim"] > row["blurry_ssim"] + 0.05, row
    assert abs(row["gain_db"] - (row["xbar_psnr"] - row["blurry_psnr"])) < 1e-9
    assert 0 < row["kernel_error"] < 0.7 and 0.5 < row["error_ratio"] < 3.0
    assert (tmp_path / "kernels" / "camera80_k11_s0.png").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"] == 1 and summary["xbar_psnr"] == row["xbar_psnr"]
    assert "| **mean** |" in (tmp_path / "results.md").read_text()
    assert "camera80_k11_s0" in completed.stdout


def test_identity_has_no_gain_and_no_kernel_columns(tmp_path):
    completed = evaluate_supervisor(
        "supervisor=identity", "data=demo", "data.size=40", f"out={tmp_path}"
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert float(rows[0]["gain_db"]) == 0.0 and "kernel_error" not in rows[0]
    table = (tmp_path / "results.csv").read_bytes()
    again = evaluate_supervisor("supervisor=map", "data=demo", "data.size=40", f"out={tmp_path}")
    assert again.returncode == 2  # never overwrites: the default out is a new folder per run
    assert f"{tmp_path} already holds results" in again.stdout + again.stderr
    assert (tmp_path / "results.csv").read_bytes() == table


def test_the_default_output_folder_is_new_for_every_run():
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="evaluate_supervisor", return_hydra_config=True)
    assert "${now:%Y-%m-%d_%H-%M-%S}" in cfg._get_node("out")._value()


def test_no_supervisor_and_too_large_kernels_are_one_clear_error(tmp_path):
    completed = evaluate_supervisor("supervisor=none", "data=demo", f"out={tmp_path}")
    assert completed.returncode == 2 and "needs a supervisor" in completed.stdout + completed.stderr
    completed = evaluate_supervisor(
        "supervisor=map", "data=demo", "data.size=40", "data.kernel_size=25", f"out={tmp_path}"
    )
    assert completed.returncode == 2
    output = completed.stdout + completed.stderr
    assert "supervisor=map cannot estimate a kernel" in output and "Traceback" not in output


def test_summary_table_script_lists_every_summary(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "supervisor_table", PROJECT / "experiments" / "supervisors" / "table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    common = {"images": 2, "blurry_psnr": 20.0, "blurry_ssim": 0.5, "seconds": 1.25}
    (tmp_path / "map" / "shake").mkdir(parents=True)
    (tmp_path / "map" / "shake" / "summary.json").write_text(
        json.dumps(
            common
            | {
                "xbar_psnr": 23.5,
                "xbar_ssim": 0.75,
                "gain_db": 3.5,
                "kernel_error": 0.61,
                "error_ratio": 1.8,
            }
        )
    )
    (tmp_path / "identity" / "shake").mkdir(parents=True)
    (tmp_path / "identity" / "shake" / "summary.json").write_text(
        json.dumps(common | {"xbar_psnr": 20.0, "xbar_ssim": 0.5, "gain_db": 0.0})
    )
    lines = module.table(tmp_path).splitlines()
    assert len(lines) == 4 and lines[1].startswith("| --- |")
    assert (
        lines[2] == "| identity | shake | 2 | 20.00 / 0.500 | 20.00 / 0.500 | +0.00 |  |  | 1.2 |"
    )
    assert (
        lines[3]
        == "| map | shake | 2 | 20.00 / 0.500 | 23.50 / 0.750 | +3.50 | 0.61 | 1.80 | 1.2 |"
    )
    assert module.main([str(tmp_path / "missing")]) == 2


def test_a_bad_weights_file_is_one_line_and_exit_2(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    result = evaluate_supervisor(
        "supervisor=synthetic", f"supervisor.weights={junk}", "data=demo", f"out={tmp_path / 'out'}"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    printed = result.stdout + result.stderr
    errors = [line for line in printed.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "not a torch checkpoint" in errors[0]
    assert "Traceback" not in printed and "HYDRA_FULL_ERROR" not in printed
    # the configuration that was asked for is kept next to the (absent) tables
    assert f"weights: {junk}" in (tmp_path / "out" / "config.yaml").read_text()


def test_an_output_folder_under_a_file_is_one_line_before_any_work(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    completed = evaluate_supervisor(
        "supervisor=identity", "data=demo", f"out={tmp_path / 'file.txt' / 'o'}"
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().endswith(f"{tmp_path / 'file.txt'} is not a folder")
    assert "Traceback" not in completed.stdout + completed.stderr
