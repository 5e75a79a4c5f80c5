"""``make gpu-check``: everything that needs a GPU, in one command of at most ~8 minutes.

On a machine with a CUDA device (one GPU), from the repository root::

    WEAKDEBLUR_DATA=/path/to/data make gpu-check       # python -m weakdeblur.gpu_check

Without a CUDA device it stops at once with one line (exit status 2). Steps, each a
subprocess with its own time limit inside the overall budget (``--minutes``, default 8):

1. **tests on CUDA**: ``pytest -m "device and not slow" --device cuda`` (the solver,
   speed, batching and bench-baseline tests; ``tests/conftest.py``); on a CPU, CI runs
   them as before.
2. **bench on CUDA**: ``weakdeblur.bench --device cuda`` part 1 at 128² and 255² (27×27
   kernel) for baseline, eager, channels_last, bf16, bf16+channels_last, cudnn_benchmark
   and tf32, with ratios to the baseline loop and peak allocated memory; then the compiled
   variants (compile, compile_reduce_overhead, gpu_all) at 255² only (compiling costs
   minutes); then part 2, batched B = 1, 8, 32 at 255², eager and bf16.
3. **Levin on CUDA, batched**: 8 full-size (255²) Levin images of one kernel size (the two
   21×21 kernels: im1-4 × kernel7/8) fitted at once (``solver.batch_size=8``) for 500
   iterations of the paper configuration (schedule scaled to the budget), seed 0; final
   PSNR per image.
4. **the same on the CPU**, started first and run in the background on the machine's
   other cores while steps 1-3 use the GPU: by default only the first of the 8 images
   (``--cpu-images``), same seed and iterations, one image at a time, because 8 images ×
   500 iterations at 255² take far longer than 8 minutes on a CPU. It is stopped at the
   deadline if unfinished. The summary gives GPU − CPU PSNR for the images both ran. Expect
   a difference, not equality: float32 runs that differ only in summation order (GPU vs CPU,
   batched vs single) diverge within a few iterations, because Adam's first steps are
   ±lr for every parameter whatever the size of its gradient (README, "Float32 caveat"), so
   the two are different realisations of the same start; compare the difference with the
   spread between seeds (a few tenths of a dB to ~1 dB per image at these budgets).

Prints a summary at the end: each step's status (ok / FAILED / timed out / skipped) and
its figures. ``--dry-run`` runs the plumbing on the CPU with tiny settings (no GPU needed;
for checking the script itself).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

PROJECT = Path(__file__).resolve().parents[1]
# 8 Levin images of one size and kernel size (21x21: kernels 7 and 8), so B = 8 is one group
LEVIN_IMAGES = [f"im{i}_kernel{k}_img" for k in (7, 8) for i in (1, 2, 3, 4)]
PART1_VARIANTS = "baseline,eager,channels_last,bf16,bf16+channels_last,cudnn_benchmark,tf32"
COMPILED_VARIANTS = "eager,compile,compile_reduce_overhead,gpu_all"
TABLE_ROW = re.compile(r"^\s*\d+x\d+\s+\d+x\d+\s")  # a part-1 row: image, kernel, variant, ...


@dataclass
class Step:
    name: str
    status: str = "skipped"
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)  # figures for the summary


def no_cuda_line() -> str:
    return (
        f"gpu-check: no CUDA device (torch.cuda.is_available() is False; torch "
        f"{torch.__version__}, built for CUDA {torch.version.cuda}): nothing run"
    )


def run_step(step: Step, command: list[str], timeout: float, env: dict | None = None) -> str:
    """Run ``command`` (echoing its output), record status and seconds; return its stdout."""
    print(f"\n=== {step.name}: {' '.join(command)}", flush=True)
    if timeout < 10:
        step.status = "skipped (no time left)"
        return ""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=PROJECT,
            env={**os.environ, "WANDB_SILENT": "true", **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = done.stdout
        step.status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        if done.returncode:
            output += "\n" + done.stderr[-4000:]
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout
        output = output or ""
        step.status = f"timed out after {timeout:.0f} s"
    step.seconds = time.perf_counter() - started
    print(output, flush=True)
    return output


def levin_command(
    images: list[str], iterations: int, device: str, batch: int, out: Path, extra: list[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "weakdeblur.run",
        "+exp=selfdeblur",
        "data=levin",
        f"data.images=[{','.join(images)}]",
        f"optim.iterations={iterations}",
        f"device={device}",
        f"solver.batch_size={batch}",
        "seed=0",
        "logger=none",
        "progress=false",
        "metrics.lpips=false",
        "metrics.error_ratio=false",
        "resume=false",
        f"hydra.run.dir={out}",
        *extra,
    ]


def final_psnr(out: Path, images: list[str]) -> dict[str, float]:
    """Each image's final PSNR from its ``metrics.json`` (missing images are left out)."""
    scores = {}
    for name in images:
        path = out / name / "metrics.json"
        if path.exists():
            record = json.loads(path.read_text())
            if record.get("psnr") is not None:
                scores[name] = float(record["psnr"])
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=8.0, help="overall budget")
    parser.add_argument("--levin-iterations", type=int, default=500)
    parser.add_argument("--cpu-images", type=int, default=1, help="images of the CPU comparison")
    parser.add_argument("--skip", default="", help="comma-separated steps: tests,bench,levin,cpu")
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny settings on the CPU (checks the script)"
    )
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print(no_cuda_line(), flush=True)
        return 2
    started = time.perf_counter()
    deadline = started + 60 * args.minutes
    skip = {name for name in args.skip.split(",") if name}
    device = "cuda" if cuda and not args.dry_run else "cpu"
    dry = args.dry_run
    cores = os.cpu_count() or 1
    data = os.environ.get("WEAKDEBLUR_DATA") or str(PROJECT.parent / "shared" / "data")
    have_levin = (Path(data) / "levin").is_dir()
    env = {"WEAKDEBLUR_DATA": data}
    print(
        f"gpu-check: device={device} torch={torch.__version__} cuda={torch.version.cuda} "
        + (f"gpu={torch.cuda.get_device_name()} " if device == "cuda" else "")
        + f"cores={cores} budget={args.minutes:g} min"
        + (" (dry run: tiny settings on the CPU)" if dry else ""),
        flush=True,
    )

    def left(reserve: float = 0.0) -> float:
        return deadline - time.perf_counter() - reserve

    work = Path(tempfile.mkdtemp(prefix="weakdeblur-gpu-check-"))
    iterations = 4 if dry else args.levin_iterations
    gpu_images = LEVIN_IMAGES[:2] if dry else LEVIN_IMAGES
    cpu_images = gpu_images[: max(0, args.cpu_images)]
    shape = ["data.crop=64"] if dry else []  # full size (255x255) unless dry

    # 4. the CPU comparison, in the background from the start (the GPU steps need few cores)
    cpu_step, cpu_process = Step("levin on the CPU (background)"), None
    cpu_out = work / "levin_cpu"
    if "cpu" not in skip and cpu_images and have_levin:
        cpu_threads = max(1, cores - 2)
        command = levin_command(
            cpu_images, iterations, "cpu", 1, cpu_out, shape + [f"threads={cpu_threads}"]
        )
        print(f"\n=== {cpu_step.name}: {' '.join(command)}", flush=True)
        cpu_log = open(work / "levin_cpu.log", "w")  # noqa: SIM115 - closed below
        cpu_process = subprocess.Popen(
            command,
            cwd=PROJECT,
            env={**os.environ, "WANDB_SILENT": "true", **env},
            stdout=cpu_log,
            stderr=subprocess.STDOUT,
        )
        cpu_started = time.perf_counter()
    elif not have_levin:
        cpu_step.status = f"skipped (no levin/ under {data})"

    steps: list[Step] = []
    # 1. the device-sensitive tests
    tests = Step(f"tests on {device}")
    steps.append(tests)
    if "tests" not in skip:
        selection = ["-k", "baseline or channels_last"] if dry else []
        output = run_step(
            tests,
            [sys.executable, "-m", "pytest", "-q", "-m", "device and not slow", "--device", device]
            + selection,
            min(150.0, left(300)),
            env,
        )
        tail = [line for line in output.strip().splitlines() if line.strip()]
        tests.lines = tail[-1:]

    # 2. the benchmark
    bench = [sys.executable, "-m", "weakdeblur.bench", "--device", device]
    common = ["--tiny", "--iterations", "2", "--rounds", "1"] if dry else []
    if "bench" not in skip:
        part1 = Step(f"bench part 1 on {device}")
        steps.append(part1)
        sizes = [] if dry else ["--sizes", "128,255", "--iterations", "20", "--rounds", "2"]
        output = run_step(
            part1,
            bench + common + sizes + ["--variants", PART1_VARIANTS, "--batches", ""],
            min(120.0, left(150)),
        )
        part1.lines = [line for line in output.splitlines() if TABLE_ROW.match(line)]
        if not dry:
            compiled = Step(f"bench compiled variants on {device} (255x255)")
            steps.append(compiled)
            output = run_step(
                compiled,
                bench
                + ["--sizes", "255", "--iterations", "20", "--rounds", "1"]
                + ["--variants", COMPILED_VARIANTS, "--batches", ""],
                min(150.0, left(120)),
            )
            compiled.lines = [line for line in output.splitlines() if TABLE_ROW.match(line)]
        for variant in ("eager", "bf16"):
            batched = Step(f"bench part 2 on {device}, {variant}")
            steps.append(batched)
            batches = [] if dry else ["--batches", "1,8,32", "--batch-iterations", "10"]
            output = run_step(
                batched,
                bench
                + common
                + batches
                + ["--variants", "", "--rounds", "1", "--batch-variant", variant],
                min(60.0, left(90)),
            )
            table = output.split("part 2", 1)[-1].splitlines()[2:]
            batched.lines = [line for line in table if line.split() and line.split()[0].isdigit()]

    # 3. Levin on the GPU, batched
    gpu_step = Step(f"levin on {device}, B={len(gpu_images)}")
    steps.append(gpu_step)
    gpu_out = work / "levin_gpu"
    gpu_scores: dict[str, float] = {}
    if "levin" in skip:
        pass
    elif not have_levin:
        gpu_step.status = f"skipped (no levin/ under {data})"
    else:
        run_step(
            gpu_step,
            levin_command(gpu_images, iterations, device, len(gpu_images), gpu_out, shape),
            min(150.0, left(15)),
            env,
        )
        gpu_scores = final_psnr(gpu_out, gpu_images)
        gpu_step.lines = [f"{name}: PSNR {value:.2f} dB" for name, value in gpu_scores.items()]
        if gpu_scores:
            mean = sum(gpu_scores.values()) / len(gpu_scores)
            gpu_step.lines.append(
                f"mean PSNR {mean:.2f} dB over {len(gpu_scores)} images, {iterations} iterations, "
                f"{gpu_step.seconds:.0f} s for the whole run"
            )

    # 4. collect the CPU comparison
    if cpu_process is not None:
        try:
            cpu_process.wait(timeout=max(1.0, left()))
            cpu_step.status = "ok" if cpu_process.returncode == 0 else "FAILED"
        except subprocess.TimeoutExpired:
            cpu_process.kill()
            cpu_process.wait()
            cpu_step.status = "stopped at the deadline (unfinished)"
        cpu_log.close()
        cpu_step.seconds = time.perf_counter() - cpu_started
        cpu_scores = final_psnr(cpu_out, cpu_images)
        for name, value in cpu_scores.items():
            line = f"{name}: PSNR {value:.2f} dB (cpu)"
            if name in gpu_scores:
                line += f", {device} {gpu_scores[name]:.2f} dB, difference {gpu_scores[name] - value:+.2f} dB"
            cpu_step.lines.append(line)
        if cpu_step.status != "ok":
            cpu_step.lines += (work / "levin_cpu.log").read_text().splitlines()[-5:]
    steps.append(cpu_step)

    print(f"\n=== gpu-check summary ({time.perf_counter() - started:.0f} s)")
    for step in steps:
        print(f"{step.name}: {step.status} ({step.seconds:.0f} s)")
        for line in step.lines:
            print(f"    {line}")
    print(f"outputs: {work}")
    failed = [s for s in steps if s.status.startswith(("FAILED", "timed out"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
