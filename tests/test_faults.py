"""Fault injection through the real entry point: every fault ends clearly and loses nothing.

One test per row of the table of docs/faults.md ("What happens when…"). Each provokes the
fault in ``python -m weakdeblur.run`` (a subprocess) and asserts the exit
code, the message and the files on disk afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import PROJECT, TINY_DEMO, TINY_OVERRIDES, run_weakdeblur

from weakdeblur.runtime.resume import ARTEFACTS

FAST = [
    "optim.iterations=20",
    "optim.log_every=5",
    "optim.snapshot_every=10",
    "stopping.check_every=5",
    "threads=1",
]
ENV = {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def run(output: Path, *overrides: str, data=TINY_DEMO, env: dict | None = None):
    return run_weakdeblur(
        *TINY_OVERRIDES,
        *FAST,
        *data,
        f"hydra.run.dir={output}",
        *overrides,
        env={**ENV, **(env or {})},
    )


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]


def said(done: subprocess.CompletedProcess) -> str:
    """Everything the run printed (Hydra sends log records to stdout, errors to stderr)."""
    return done.stdout + done.stderr


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def blocky(path: Path, size: int, seed: int, colour: bool = False) -> None:
    rng = np.random.default_rng(seed)
    shape = (size // 4, size // 4, 3) if colour else (size // 4, size // 4)
    image = np.kron(rng.random(shape), np.ones((4, 4, 1) if colour else (4, 4)))
    iio.imwrite(path, (image * 255).astype(np.uint8))


def folder_data(folder: Path, kernel_size: int = 5) -> list[str]:
    return ["data=folder", f"data.root={folder}", f"data.kernel_size={kernel_size}"]


def nothing_created(done, output: Path, parent: Path, before: set) -> None:
    assert not output.exists(), done.stderr
    assert set(parent.iterdir()) == before


# -- data root missing -------------------------------------------------------------------


def test_missing_data_root_one_line_exit_2_nothing_created(tmp_path):
    output = tmp_path / "out"
    done = run(output, "data=levin", f"data_root={tmp_path}/nowhere", data=[])
    assert done.returncode == 2
    assert error_lines(done) == [
        f"weakdeblur: error: Levin data folder not found: {tmp_path}/nowhere/levin "
        "(set data_root= or the WEAKDEBLUR_DATA environment variable to the folder that holds it, "
        "or data.root= to this folder itself)"
    ]
    nothing_created(done, output, tmp_path, set())


# -- a folder with a good, a truncated, two colour and a too-small image -------------------


@pytest.fixture(scope="module")
def mixed_folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    folder = root / "blurry"
    folder.mkdir()
    blocky(folder / "good.png", 32, 0)
    blocky(folder / "colour_a.png", 32, 1, colour=True)
    blocky(folder / "colour_b.png", 32, 2, colour=True)
    blocky(folder / "tiny.png", 4, 3)  # 4x4 pixels, kernel 5x5
    (folder / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00")
    output = root / "out"
    done = run(output, data=folder_data(folder))
    return done, output


def test_unreadable_image_fails_alone_with_its_reason(mixed_folder_run):
    done, output = mixed_folder_run
    assert done.returncode == 1
    record = metrics(output / "truncated")
    assert record["status"] == "failed" and "not a readable image" in record["message"]
    assert "truncated.png" in record["message"]
    assert f"truncated: {record['message']}" in said(done)
    for name in ("good", "colour_a", "colour_b"):
        assert metrics(output / name)["status"] == "ok"
        for artefact in ARTEFACTS:
            assert (output / name / artefact).is_file()
    summary = json.loads((output / "summary.json").read_text())
    assert summary["ok"] == 3 and summary["failed"] == ["tiny", "truncated"]
    assert "2 image(s) failed: tiny, truncated" in said(done)


def test_colour_image_is_converted_to_grey_and_noted_once(mixed_folder_run):
    done, output = mixed_folder_run
    notes = [line for line in said(done).splitlines() if "converted to grey" in line]
    assert len(notes) == 1 and str(output.parent / "blurry") in notes[0]
    for name in ("colour_a", "colour_b"):
        assert metrics(output / name)["image_size"] == [32, 32]
        assert iio.imread(output / name / "x.png").ndim == 2  # solved and saved as grey
        assert iio.imread(output / name / "blurry.png").ndim == 2


def test_kernel_not_smaller_than_the_image_fails_that_image(mixed_folder_run):
    done, output = mixed_folder_run
    record = metrics(output / "tiny")
    assert record["status"] == "failed"
    assert record["message"] == (
        "tiny: kernel size 5x5 is not smaller than the image (4x4); "
        "use a smaller kernel_size or a larger crop"
    )
    assert record["message"] in said(done)
    assert not (output / "tiny" / "x.png").exists()


# -- data.images names nothing that exists ---------------------------------------------------


def test_unknown_image_names_list_what_exists_exit_2(tmp_path):
    output = tmp_path / "out"
    done = run(output, "data.images=[nothing,camera40_k5_s0]")
    assert done.returncode == 2
    assert error_lines(done) == [
        "weakdeblur: error: unknown image(s) ['nothing']; available: camera40_k5_s0"
    ]
    nothing_created(done, output, tmp_path, set())


# -- unknown config key or wrong type ----------------------------------------------------------


def test_unknown_key_and_wrong_type_are_one_line_errors(tmp_path):
    output = tmp_path / "out"
    unknown = run(output, "nonsense_key=1")
    assert unknown.returncode == 2
    lines = error_lines(unknown)
    assert len(lines) == 1 and lines[0].startswith(
        "weakdeblur: error: unknown key nonsense_key; keys at the top level: color, data, "
    )
    wrong = run(output, "optim.iterations=many")
    assert wrong.returncode == 2
    assert error_lines(wrong) == [
        "weakdeblur: error: optim.iterations: Value 'many' of type 'str' could not be "
        "converted to Integer"
    ]
    nothing_created(wrong, output, tmp_path, set())


OPTIM_KEYS = "gamma, iterations, log_every, lr_image, lr_kernel, milestones, snapshot_every"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.iterations=0"], "optim.iterations must be a whole number in [1, 10^7]; got 0"),
        (["optim.iterations=-5"], "optim.iterations must be a whole number in [1, 10^7]; got -5"),
        (["optim.log_every=0"], "optim.log_every must be a whole number >= 1; got 0"),
        (
            ["optim.snapshot_every=-1"],
            "optim.snapshot_every must be a whole number >= 0 (0: no snapshots); got -1",
        ),
        (["stopping.check_every=0"], "stopping.check_every must be a whole number >= 1; got 0"),
        (
            ["data.kernel_size=-3"],
            "data.kernel_size must be a whole number >= 1, or a pair of them; got -3",
        ),
        (["seed=-1"], "seed must be a whole number in [0, 2^63); got -1"),
        (["optim.lr_image=0"], "optim.lr_image must be a number > 0; got 0"),
        (["solver.batch_size=0"], "solver.batch_size must be a whole number >= 1; got 0"),
        (["solver.bf16=maybe"], "solver.bf16 must be true, false or auto; got 'maybe'"),
        (
            ["+exp=weak_only", "loss.terms.weak.weight=-0.1"],
            "loss.terms.weak.weight must be a number >= 0; got -0.1",
        ),
        (
            ["+optim.iteration=60"],
            f"unknown key optim.iteration (OptimSettings); valid keys of optim: {OPTIM_KEYS}",
        ),
        (["optim.iteration=60"], f"unknown key optim.iteration; keys of optim: {OPTIM_KEYS}"),
        (
            ["+exp=nope"],
            "unknown exp 'nope'; choose one of: nonuniform, nonuniform_weak_rec_es, "
            "oracle, portfolio, rec_only, selfdeblur, selfdeblur_wmv, weak_only, weak_only_es, weak_rec, "
            "weak_rec_es",
        ),
        (
            ["optim.iterations=99999999999999999999"],
            "optim.iterations must be a whole number in [1, 10^7]; got 99999999999999999999",
        ),
        (["device=gpu"], "device must be auto, cpu, cuda or cuda:N; got 'gpu'"),
        (
            ["data=image", "data.kernel_size=5"],
            "data.path is required: add data.path=VALUE (the blurry image file)",
        ),
        (
            ["+exp=weak_only", "supervisor=nafnet"],
            "supervisor.checkpoint is required: add "
            "supervisor.checkpoint=VALUE (the network's weights file; docs/supervisors.md)",
        ),
        (
            ["exp=selfdeblur"],
            "exp is not in the defaults list (presets are added): use +exp=selfdeblur",
        ),
        (
            ["data=folder", "data.root=.", "data.kernel_sizes={a:15}"],
            "data.kernel_sizes gets new keys ('a', ...): use +data.kernel_sizes={a:15}",
        ),
        (
            ["optim.iterations=[1"],
            "cannot parse the override 'optim.iterations=[1': no viable alternative at input '[1'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None,
)
def test_a_bad_value_or_key_is_refused_before_any_work(tmp_path, overrides, message):
    if "device=gpu" in overrides and torch.cuda.is_available():
        pytest.skip("a CUDA machine")
    output = tmp_path / "out"
    other_data = overrides[0].startswith("data=")  # instead of the tiny demo's data overrides
    refused = run(output, *overrides, **({"data": []} if other_data else {}))
    assert refused.returncode == 2, said(refused)
    assert error_lines(refused) == [f"weakdeblur: error: {message}"]
    nothing_created(refused, output, tmp_path, set())


def test_an_unreadable_image_path_is_one_line_before_any_work(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "empty.png").write_bytes(b"")
    (inputs / "text.png").write_text("not an image\n")
    good = np.kron(np.random.default_rng(0).random((8, 8)), np.ones((4, 4)))
    iio.imwrite(inputs / "whole.png", (good * 255).astype(np.uint8))
    (inputs / "cut.png").write_bytes((inputs / "whole.png").read_bytes()[:60])  # header only
    cases = {
        inputs / "cut.png": f"not a readable image: {inputs / 'cut.png'}",
        inputs / "empty.png": f"not a readable image: {inputs / 'empty.png'} (empty file)",
        inputs / "text.png": f"not a readable image: {inputs / 'text.png'}",
        PROJECT / "README.md": f"not a readable image: {PROJECT / 'README.md'}",
        inputs: f"is a folder: {inputs} (use data=folder data.root={inputs})",
    }
    for path, message in cases.items():
        refused = run(
            tmp_path / "out", data=["data=image", f"data.path={path}", "data.kernel_size=5"]
        )
        assert refused.returncode == 2, said(refused)
        assert error_lines(refused) == [f"weakdeblur: error: {message}"]
        assert "pip install" not in said(refused)
        nothing_created(refused, tmp_path / "out", tmp_path, {inputs})


def test_settings_that_cannot_work_together_are_one_line_errors(tmp_path):
    output = tmp_path / "out"
    for overrides, message in [
        (
            ("+exp=nonuniform", "generator=grid_small", "seed_mode=reference"),
            "seed_mode=reference needs SelfDeblur's generators (SkipNetwork, KernelMLP); "
            "generator.kernel is KernelGridMLP (use seed_mode=seeded)",
        ),
        (
            ("seed_mode=reference", "solver.batch_size=2"),
            "seed_mode=reference runs one image at a time; set solver.batch_size=1",
        ),
        (
            ("gate=stability",),
            "gate needs a supervisor that estimates the blur kernel (supervisor=map); "
            "supervisor is none",
        ),
    ]:
        refused = run(output, *overrides)
        assert refused.returncode == 2, refused.stderr
        assert error_lines(refused) == [f"weakdeblur: error: {message}"]
        nothing_created(refused, output, tmp_path, set())


# -- supervisor checkpoints ---------------------------------------------------------------------

SMALL_NAFNET = [
    "supervisor=nafnet",
    "supervisor.img_channel=1",
    "supervisor.width=8",
    "supervisor.enc_blk_nums=[1,1]",
    "supervisor.dec_blk_nums=[1,1]",
]


def test_supervisor_checkpoint_missing_or_of_another_architecture(tmp_path):
    from weakdeblur.supervisors import NAFNet

    missing = run(tmp_path / "a", *SMALL_NAFNET, f"supervisor.checkpoint={tmp_path}/none.pth")
    assert missing.returncode == 2
    (line,) = [line for line in error_lines(missing) if "ERROR" in line]
    assert line.endswith(
        f"supervisor checkpoint not found: {tmp_path}/none.pth (set supervisor.checkpoint=PATH)"
    )
    assert not (tmp_path / "a").exists()  # before any image starts: no run folder is left

    other = NAFNet(img_channel=1, width=4, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1))
    torch.save({"params": other.state_dict()}, tmp_path / "width4.pth")
    wrong = run(tmp_path / "b", *SMALL_NAFNET, f"supervisor.checkpoint={tmp_path}/width4.pth")
    assert wrong.returncode == 2
    (line,) = [line for line in error_lines(wrong) if "ERROR" in line]
    assert f"{tmp_path}/width4.pth does not match NAFNet(width=8, enc=[1, 1]" in line
    assert "size mismatch" in line
    assert not (tmp_path / "b").exists()


# -- a checkpoint carrying pickled code --------------------------------------------------------


class Payload:
    """Unpickling this calls Path.touch(marker): code run by loading a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_pickled_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"params": {"intro.weight": Payload(marker)}}, tmp_path / "evil.pth")
    done = run(tmp_path / "out", *SMALL_NAFNET, f"supervisor.checkpoint={tmp_path}/evil.pth")
    assert done.returncode == 2
    (line,) = [line for line in error_lines(done) if "ERROR" in line]
    assert f"refused supervisor checkpoint {tmp_path}/evil.pth" in line
    assert "weights_only=True" in line
    assert not marker.exists()  # the payload never ran
    assert not list((tmp_path / "out").glob("*/metrics.json"))


# -- NaN / inf loss ---------------------------------------------------------------------------


def test_non_finite_loss_fails_that_image_keeps_last_finite_iterate_next_goes_on(tmp_path):
    folder = tmp_path / "blurry"
    folder.mkdir()
    blocky(folder / "a.png", 32, 0)
    blocky(folder / "b.png", 32, 1)
    output = tmp_path / "out"
    done = run(
        output,
        "+loss.terms.fault={_target_:weakdeblur.runtime.faults.NonFiniteAt,at:12,images:[a]}",
        data=folder_data(folder),
    )
    assert done.returncode == 1
    failed = metrics(output / "a")
    assert failed["status"] == "failed"
    assert failed["message"] == "non-finite loss at iteration 15 (loss nan)"
    assert failed["returned_iteration"] == 10 and failed["iterations"] == 15
    history = json.loads((output / "a" / "history.json").read_text())
    assert [row["iteration"] for row in history] == [5, 10]
    saved = iio.imread(output / "a" / "x.png")
    assert saved.shape == (32, 32) and saved.std() > 0  # the iterate of step 10, not blank
    assert "a: non-finite loss at iteration 15" in said(done)
    good = metrics(output / "b")
    assert good["status"] == "ok" and good["iterations"] == 20
    summary = json.loads((output / "summary.json").read_text())
    assert summary["failed"] == ["a"] and summary["ok"] == 1


# -- SIGTERM / Ctrl-C mid-image -------------------------------------------------------------------


def test_sigterm_keeps_finished_images_marks_the_unfinished_and_a_rerun_resumes(tmp_path):
    folder = tmp_path / "blurry"
    folder.mkdir()
    blocky(folder / "a.png", 32, 0)  # quick
    blocky(folder / "b.png", 64, 1)  # still running when the signal comes
    output = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "weakdeblur.run",
        *TINY_OVERRIDES,
        *folder_data(folder),
        "threads=1",
        "optim.iterations=150",
        "optim.log_every=10",
        f"hydra.run.dir={output}",
    ]
    environment = {**os.environ, **ENV, "WANDB_SILENT": "true"}
    process = subprocess.Popen(
        command, cwd=PROJECT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if metrics(output / "a")["status"] == "ok" and (output / "b" / "history.json").exists():
                break
        except (OSError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr.decode()[-2000:]
    assert "interrupted during b; finished images are kept" in stdout.decode()
    assert metrics(output / "a")["status"] == "ok"
    for name in ARTEFACTS:
        assert (output / "a" / name).is_file()
    assert metrics(output / "b") == {
        "name": "b",
        "status": "interrupted",
        "message": "interrupted before the image finished",
    }
    assert not list(output.glob("*/.lock"))  # locks released
    summary = json.loads((output / "summary.json").read_text())
    assert summary["interrupted"] == ["b"] and summary["ok"] == 1
    finished = (output / "a" / "x.png").stat().st_mtime_ns

    rerun = subprocess.run(
        command,
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert "a: complete" in rerun.stdout.decode()
    assert (output / "a" / "x.png").stat().st_mtime_ns == finished
    assert metrics(output / "b")["status"] == "ok"


# -- a crash while writing results ------------------------------------------------------------------

CRASH_ON_FINAL_METRICS = """
import os, sys, runpy
real_replace = os.replace
def replace(source, target, *args, **kwargs):
    if str(target).endswith("metrics.json") and '"psnr"' in open(source).read():
        with open(source, "r+") as handle:  # the kernel dies half-way through the write
            handle.truncate(os.path.getsize(source) // 2)
        os._exit(137)
    return real_replace(source, target, *args, **kwargs)
os.replace = replace
sys.argv = ["weakdeblur.run", *sys.argv[1:]]
runpy.run_module("weakdeblur.run", run_name="__main__")
"""


def test_a_crash_while_writing_leaves_no_half_written_metrics(tmp_path):
    output = tmp_path / "out"
    arguments = [*TINY_OVERRIDES, *FAST, *TINY_DEMO, f"hydra.run.dir={output}"]
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_ON_FINAL_METRICS, *arguments],
        cwd=PROJECT,
        env={**os.environ, **ENV, "WANDB_SILENT": "true"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert crashed.returncode == 137
    (image,) = [p for p in output.iterdir() if p.is_dir() and not p.name.startswith(".")]
    record = metrics(image)  # the previous complete version, valid JSON
    assert record["status"] == "running"
    assert list(image.glob(".metrics.json.*.tmp"))  # the half-written file never got the name
    lock = json.loads((image / ".lock").read_text())  # killed: its lock stays behind
    assert lock["pid"] != os.getpid()

    rerun = run(output)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"removing a stale lock (pid {lock['pid']} no longer running)" in said(rerun)
    assert metrics(image)["status"] == "ok"
    assert not (image / ".lock").exists()


# -- two runs on one output folder -------------------------------------------------------------------


def test_a_second_run_refuses_an_image_locked_by_a_live_run(tmp_path):
    output = tmp_path / "out"
    image = output / "camera40_k5_s0"
    image.mkdir(parents=True)
    import socket

    # a live process (this test) on this host holds the image, mid-way
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": "2026-01-01T00:00:00"}
    (image / ".lock").write_text(json.dumps(owner))
    (image / "metrics.json").write_text('{"name": "camera40_k5_s0", "status": "running"}')
    before = {p.name: p.stat().st_mtime_ns for p in image.iterdir()}
    done = run(output)
    assert done.returncode == 1
    expected = f"camera40_k5_s0: locked by another run (pid {os.getpid()} on {owner['host']}"
    assert expected in said(done)
    assert "1 image(s) skipped, locked by another run: camera40_k5_s0" in said(done)
    assert {p.name: p.stat().st_mtime_ns for p in image.iterdir()} == before  # untouched
    summary = json.loads((output / "summary.json").read_text())
    assert summary["locked"] == ["camera40_k5_s0"] and summary["ok"] == 0


# -- W&B online but unreachable, and secrets -----------------------------------------------------------

SECRETS = {
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    "FAULTS_SERVICE_TOKEN": "tok-5ecret-from-the-environment",
}
LITERAL_SECRET = "literal-5ecret-on-the-command-line"


@pytest.fixture(scope="module")
def unreachable_wandb_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("wandb") / "out"
    started = time.monotonic()
    done = run(
        output,
        "logger=wandb",
        "logger.init_timeout=10",
        "logger.init_retries=1",
        f"+notify.api_token={LITERAL_SECRET}",
        env={"WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9", **SECRETS},
    )
    return done, output, time.monotonic() - started


def test_unreachable_wandb_falls_back_to_offline_with_one_warning(unreachable_wandb_run):
    done, output, seconds = unreachable_wandb_run
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in said(done).splitlines() if "W&B online start failed" in line]
    assert len(warnings) == 1 and "logging offline from now on" in warnings[0]
    assert len(list((output / "wandb").glob("offline-run-*/*.wandb"))) == 1
    assert metrics(output / "camera40_k5_s0")["status"] == "ok"
    assert seconds < 120


def test_no_secret_in_any_file_written(unreachable_wandb_run):
    done, output, _ = unreachable_wandb_run
    assert done.returncode == 0
    secrets = [*SECRETS.values(), LITERAL_SECRET]
    files = [path for path in output.rglob("*") if path.is_file()]
    assert len(files) > 20  # images, metrics, .hydra, W&B's run files
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret} in {path}"
    assert "api_token: REDACTED" in (output / ".hydra" / "config.yaml").read_text()
    for secret in secrets:
        assert secret not in done.stdout + done.stderr


# -- output folder not writable ----------------------------------------------------------------------


def test_output_folder_not_writable_one_line_exit_2_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    output = blocker / "out"
    done = run(output)
    assert done.returncode == 2
    assert error_lines(done) == [
        f"weakdeblur: error: output folder {output} cannot be created: {blocker} is not a folder"
    ]
    assert set(tmp_path.iterdir()) == {blocker} and blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root writes anywhere; a read-only folder only stops other users
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
        refused = run(readonly / "out")
        assert refused.returncode == 2
        assert "is not writable" in error_lines(refused)[0]
        assert not list(readonly.iterdir())


def test_make_install_on_a_too_full_disk_is_one_line_before_pip(tmp_path):
    """A first install needs ~6 GB (torch's CUDA build); short of it, make says so, not pip."""
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "--no-print-directory", "install", f"VENV={venv}", "INSTALL_NEEDS_MB=999999999"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    message = [line for line in done.stderr.splitlines() if line.startswith("make install:")]
    assert len(message) == 1, done.stderr
    free_mb = int(message[0].split()[2])
    assert 0 <= free_mb < 999999999
    assert f"MB free under {tmp_path}/, but a first install needs about 999999999 MB" in message[0]
    assert "VENV=PATH" in message[0]
    assert not venv.exists() and "pip" not in done.stdout  # refused before the venv and pip


# -- bounded soak ---------------------------------------------------------------------------------------

SOAK_JOBS = 50


@pytest.mark.slow
def test_soak_joblib_sweep_of_50_tiny_jobs_is_complete_and_consistent(tmp_path):
    """50 jobs (seeds) of a 32 px demo through the joblib launcher, then the report counts them."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    root = tmp_path / "sweep"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "weakdeblur.run",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            *TINY_OVERRIDES,
            "data=demo",
            "data.size=32",
            "data.offset=null",
            "data.true_kernel_size=5",
            "data.kernel_size=7",
            "optim.iterations=10",
            "optim.log_every=5",
            "stopping.check_every=5",
            "threads=1",
            f"seed=range(0,{SOAK_JOBS})",
            f"hydra.sweep.dir={root}",
        ],
        cwd=PROJECT,
        env={**os.environ, **ENV, "WANDB_SILENT": "true"},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    sweep_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == SOAK_JOBS
    seeds = set()
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        assert summary["images"] == summary["ok"] == 1, job.name
        (image,) = [p for p in job.iterdir() if (p / "metrics.json").is_file()]
        record = metrics(image)
        assert record["status"] == "ok" and record["iterations"] == 10
        assert f"seed={record['seed']}" in job.name
        assert summary["per_image"][0]["psnr"] == record["psnr"]
        for artefact in ARTEFACTS:
            assert (image / artefact).is_file()
        seeds.add(record["seed"])
    assert seeds == set(range(SOAK_JOBS))
    assert not list(root.rglob("*.tmp")) and not list(root.rglob(".lock"))

    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "weakdeblur.report",
            str(root),
            "--out",
            str(tmp_path / "report"),
            "--no-figures",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    import csv

    with (tmp_path / "report" / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == SOAK_JOBS
    assert all(row["status"] == "ok" for row in rows)
    assert len({row["experiment"] for row in rows}) == SOAK_JOBS  # one per seed
    print(f"soak: {SOAK_JOBS} jobs in {sweep_seconds:.0f} s (joblib, 2 processes)")


# -- the pieces, in process ----------------------------------------------------------------------------


def test_image_lock_semantics(tmp_path):
    import socket

    from weakdeblur.runtime.locks import LOCK_FILE, STALE_AFTER, ImageLock, ImageLocked

    folder = tmp_path / "image"
    with ImageLock(folder):
        owner = json.loads((folder / LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(ImageLocked, match=f"pid {os.getpid()}"):
            ImageLock(folder).acquire()  # held: a second holder is refused
    assert not (folder / LOCK_FILE).exists()

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    (folder / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead)}))
    with ImageLock(folder):  # stale (pid gone, same host): taken over
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()

    (folder / LOCK_FILE).write_text(json.dumps({"host": "elsewhere.example", "pid": int(dead)}))
    with pytest.raises(ImageLocked, match="elsewhere.example"):
        ImageLock(folder).acquire()  # another host's lock with a recent heartbeat: respected
    assert json.loads((folder / LOCK_FILE).read_text())["host"] == "elsewhere.example"
    silent = time.time() - STALE_AFTER - 60
    os.utime(folder / LOCK_FILE, (silent, silent))  # its node died: no heartbeat for 31 min
    with ImageLock(folder):
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_scrubbing_secrets():
    from weakdeblur.runtime.secrets import (
        config_secrets,
        environment_secrets,
        redact_overrides,
        scrub,
    )

    environ = {"WANDB_API_KEY": "k" * 40, "MY_TOKEN": "tok-123456", "HOME": "/root", "PIN": "12"}
    secrets = environment_secrets(environ) | config_secrets({"notify": {"api_token": "abcdef"}})
    assert secrets == {"k" * 40, "tok-123456", "abcdef"}
    config = {"notify": {"api_token": "abcdef", "url": "https://x/?t=tok-123456"}, "seed": 3}
    assert scrub(config, secrets) == {
        "notify": {"api_token": "REDACTED", "url": "https://x/?t=REDACTED"},
        "seed": 3,
    }
    assert redact_overrides("seed=1,+notify.password=hunter2,data.root=/a") == (
        "seed=1,+notify.password=REDACTED,data.root=/a"
    )


def test_a_cached_lpips_backbone_carrying_code_is_refused(tmp_path, monkeypatch, caplog):
    """torchvision loads the cached AlexNet with weights_only=False; we check the file first."""
    from weakdeblur.metrics import LPIPS_BACKBONE, LPIPSMetric

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    marker = tmp_path / "code_ran"
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(
        {"features.0.weight": Payload(marker)}, tmp_path / "hub/checkpoints" / LPIPS_BACKBONE
    )
    metric = LPIPSMetric(enabled=True)
    image = torch.rand(1, 1, 16, 16)
    assert metric(image, image) is None and not metric.available
    assert not marker.exists()
    assert "refused LPIPS backbone" in caplog.text and "weights_only=True" in caplog.text


REQUIRED_BY = {  # what a user must add to these options (their ??? values)
    "data=image": ["data.path=photo.png"],
    "supervisor=nafnet": ["supervisor.checkpoint=g.pth"],
    "supervisor=restormer": ["supervisor.checkpoint=g.pth"],
    "supervisor=pretrained": [
        "supervisor.checkpoint=g.pth",
        "supervisor.network._target_=weakdeblur.supervisors.NAFNet",
    ],
}


def test_every_preset_and_option_passes_the_settings_checks():
    """The type, value and key checks must never refuse a shipped configuration: every preset,
    and every option of every group."""
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    from weakdeblur.runtime.preflight import PreflightError, check_settings

    choices = [f"+exp={p.stem}" for p in sorted((CONF / "exp").glob("*.yaml"))]
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name not in ("exp", "hydra")):
        choices += [f"{group.name}={p.stem}" for p in sorted(group.glob("*.yaml"))]
    assert len(choices) > 40
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for choice, required in REQUIRED_BY.items():  # and without them, one clear refusal
            with pytest.raises(PreflightError, match=f"{required[0].split('=')[0]} is required"):
                check_settings(compose(config_name="config", overrides=[choice]))
        for choice in choices:
            needs_map = choice.split("=")[0] in ("gate", "kernel_start")  # they read g's k̄
            overrides = [choice, *(["supervisor=map"] if needs_map else [])]
            overrides += REQUIRED_BY.get(choice, [])  # the options' mandatory values (???)
            overrides += ["portfolio=default"] if choice.startswith("arbiter=") else []
            check_settings(compose(config_name="config", overrides=overrides))
