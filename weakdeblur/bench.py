"""Benchmark: seconds per iteration of the paper configuration (``make bench``).

Times the real solver loop (G_x, G_k, forward model, loss, Adam) on a
synthetic image, against ``baseline``: the same networks in a plain loop written as the
reference SelfDeblur script writes it (:mod:`weakdeblur.baseline`), without the framework. On a CPU, one run logs every iteration and the median
per-iteration time is taken; the runs being compared are interleaved in rounds
(eager, variant A, variant B, eager, ...) in one process, so that load from
other processes on a shared machine hits them alike. On CUDA, the difference
of a short and a longer run without per-iteration logging (which would
synchronise the device). Prints figures measured in this one run only: this is
a script, not a test.

Part 1, per-iteration speed: the paper configuration at 255x255 and at the
128 crop (27x27 kernel) for each speed variant (:mod:`weakdeblur.speed`),
against the baseline loop and against the plain eager path of the solver (every
switch off), all measured in the same run: seconds per iteration, the ratios
``x base`` (baseline s/it / variant s/it) and ``x eager``, peak memory
(peak RSS of a fresh process per variant on a CPU, peak allocated on CUDA) and
the one-off cost of the first run (compilation for ``compile``).

Part 2, batched multi-image optimisation (:mod:`weakdeblur.batched`): image
iterations per second for B = 1, 4, 8, 32 images fitted at once, against one
image at a time, and images per hour at the paper's 5000 iterations.

    python -m weakdeblur.bench                        # everything (CPU: ~20 min)
    python -m weakdeblur.bench --threads 1 --sizes 128 --batches ""   # the issue's 128², k27, 1 thread
    python -m weakdeblur.bench --threads 2 --sizes 255 --batches ""   # 255², two threads
    python -m weakdeblur.bench --variants baseline,eager,bf16 --batches ""
    python -m weakdeblur.bench --profile              # top ops of one eager iteration (128 crop)
    python -m weakdeblur.bench --tiny                 # seconds, for the test suite
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial

import torch

from weakdeblur.baseline import baseline_loop
from weakdeblur.batched import BatchedSolver
from weakdeblur.data.sample import Sample
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import FidelityLoss
from weakdeblur.solver import InputSettings, OptimSettings, Solver, resolve_device
from weakdeblur.speed import SpeedSettings, bf16_supported, set_threads

# every switch off: the reference eager path
EAGER = dict(
    channels_last=False,
    compile=False,
    bf16=False,
    cudnn_benchmark=False,
    tf32=False,
    inference_constants=False,
)
BASELINE = "baseline"  # the plain reference loop (weakdeblur.baseline), not a solver variant
VARIANTS = {
    BASELINE: {},
    "eager": {},
    "channels_last": dict(channels_last=True),
    "compile": dict(compile=True),
    "channels_last+compile": dict(channels_last=True, compile=True),
    "inference_constants": dict(inference_constants=True),  # no-op without a supervisor
    # bf16: run where the device computes it natively (weakdeblur.speed.bf16_supported)
    "bf16": dict(bf16=True),
    "bf16+channels_last": dict(bf16=True, channels_last=True),
    "bf16+channels_last+compile": dict(bf16=True, channels_last=True, compile=True),
    # GPU paths (run on CUDA only)
    "cudnn_benchmark": dict(cudnn_benchmark=True),
    "tf32": dict(tf32=True),
    "compile_reduce_overhead": dict(compile=True, compile_mode="reduce-overhead"),
    "gpu_all": dict(
        cudnn_benchmark=True, tf32=True, bf16=True, compile=True, compile_mode="max-autotune"
    ),
}
GPU_ONLY = {"cudnn_benchmark", "tf32", "compile_reduce_overhead", "gpu_all"}
NATIVE_BF16_ONLY = {"bf16", "bf16+channels_last", "bf16+channels_last+compile", "gpu_all"}
TINY_WIDTHS = dict(
    channels_down=[16] * 3, channels_up=[16] * 3, channels_skip=[4] * 3, non_local_scales=[2]
)


def make_solver(
    iterations: int,
    device: str,
    tiny: bool,
    speed: SpeedSettings | None = None,
    log_every: int | None = None,
) -> Solver:
    return Solver(
        partial(SkipNetwork, **(TINY_WIDTHS if tiny else {})),
        partial(KernelMLP, hidden=64 if tiny else 1000),
        fidelity=FidelityLoss(0.2),
        optim=OptimSettings(
            iterations=iterations, log_every=log_every or iterations, snapshot_every=0
        ),
        inputs=InputSettings(),
        device=device,
        speed=speed or SpeedSettings(**EAGER),
    )


def baseline_run(sample: Sample, device: str, tiny: bool, iterations: int, log_every: int):
    """The baseline loop (:mod:`weakdeblur.baseline`) as :func:`make_solver` configures the
    solver: MSE for the first 20 % of the iterations, then 1 - SSIM; milestones at 40/60/80 %."""
    optim = OptimSettings(iterations=iterations)
    return baseline_loop(
        sample.blurry,
        sample.kernel_size,
        iterations,
        log_every=log_every,
        switch_iteration=FidelityLoss(0.2).switch_iteration(iterations),
        milestones=optim.milestone_iterations(),
        device=device,
        image_network=TINY_WIDTHS if tiny else None,
        kernel_hidden=64 if tiny else 1000,
    )


def synthetic(size: int, kernel_size: int, index: int = 0) -> Sample:
    generator = torch.Generator().manual_seed(index)
    return Sample(
        f"bench{index}",
        torch.rand(1, 1, size, size, generator=generator),
        (kernel_size, kernel_size),
    )


@dataclass
class Timing:
    seconds_per_iteration: float
    first_run: float  # seconds of the warm-up run (compilation, allocator, kernels)
    peak_mb: float
    conv_gflops: float | None = None  # convolution FLOPs / convolution seconds (CPU profile)
    outside_conv: float | None = None  # share of the profiled op time outside convolutions


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    try:  # Linux: "5" resets this process's peak resident set size (VmHWM)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB, never reset


def time_runs(run, warm: int, extra: int, device: torch.device) -> Timing:
    """Seconds per iteration of ``run(iterations, log_every)`` (returns a Result or a list).

    CPU: one run of ``warm + extra`` iterations logging every iteration (a logging step
    costs a few crops and copies, small against an iteration); the median of the last
    ``extra`` per-iteration times, robust to other processes' bursts on a shared machine.
    CUDA: per-iteration logging would synchronise the device, so three runs without it
    (warm-up, ``warm``, ``warm + extra`` iterations) and the difference of the last two.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        timings = []
        for iterations in (warm, warm, warm + extra):
            _sync(device)
            started = time.perf_counter()
            run(iterations, iterations)
            _sync(device)
            timings.append(time.perf_counter() - started)
        return Timing((timings[2] - timings[1]) / extra, timings[0], _peak_mb(device))
    result = run(warm + extra, 1)
    history = (result[0] if isinstance(result, list) else result).history
    stamps = [row["seconds"] for row in history]
    steps = [
        later - earlier for earlier, later in zip(stamps[warm - 1 : -1], stamps[warm:], strict=True)
    ]
    return Timing(statistics.median(steps), stamps[warm - 1], _peak_mb(device))


def compare(runs: dict, extra: int, rounds: int, device: torch.device) -> dict[str, Timing]:
    """Time each of ``runs`` (name -> ``run(iterations, log_every)``) in interleaved rounds.

    Each run first gets one warm-up run (its seconds are the "first run": compilation,
    allocator, kernel selection); then ``rounds`` rounds time every run in turn, so that a
    burst of load from other processes hits all of them alike. The reported seconds per
    iteration are the median over rounds. Peak memory: CUDA, the largest allocated over
    that run's runs; CPU, the peak resident set of its warm-up run (the allocator keeps
    freed memory, so list runs from small to large, as the batch sizes are).
    """
    first, peaks, seconds = {}, {}, {name: [] for name in runs}
    for name, run in runs.items():
        _reset_peak(device)
        _sync(device)
        started = time.perf_counter()
        run(2, 2)
        _sync(device)
        first[name] = time.perf_counter() - started
        peaks[name] = _peak_mb(device)
    for _ in range(rounds):
        for name, run in runs.items():
            _reset_peak(device)
            seconds[name].append(time_runs(run, 1, extra, device).seconds_per_iteration)
            if device.type == "cuda":  # exact per run; a CPU process keeps its freed memory
                peaks[name] = max(peaks[name], _peak_mb(device))
    return {
        name: Timing(statistics.median(values), first[name], peaks[name])
        for name, values in seconds.items()
    }


def conv_flops_per_iteration(sample: Sample, device: str, tiny: bool) -> float:
    """FLOPs of the convolutions (forward and backward) of one iteration of the reference
    loop, counted by :class:`torch.utils.flop_counter.FlopCounterMode` (every variant computes
    the same convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        baseline_run(sample, device, tiny, 1, 1)
    counts = counter.get_flop_counts().get("Global", {})
    return float(sum(value for op, value in counts.items() if "convolution" in str(op)))


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 to /dev/null: the profiler's C++ side prints a line at every start
    and stop, which would bury the table."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _op_seconds(run, iterations: int) -> tuple[float, float]:
    """(convolution seconds, all op seconds) of ``run(iterations, iterations)``: the self CPU
    times of torch.profiler's operators, the convolution ones being those named ``*conv*``."""
    with _native_stderr_silenced(), torch.autograd.profiler.profile(use_kineto=False) as prof:
        run(iterations, iterations)
    events = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in events) / 1e6
    conv = sum(event.self_cpu_time_total for event in events if "conv" in event.key.lower()) / 1e6
    return conv, total


def conv_breakdown(run, flops: float, extra: int = 3) -> tuple[float, float]:
    """(achieved convolution GFLOP/s, share of op time outside convolutions) of ``run`` per
    iteration: profiles of a 1-iteration and a (1 + ``extra``)-iteration run, differenced so
    that the set-up (network construction, codes) cancels. The profiler's own cost per call
    weighs on the many small operators, so the share outside convolutions is an upper bound."""
    conv_short, total_short = _op_seconds(run, 1)
    conv_long, total_long = _op_seconds(run, 1 + extra)
    conv = max(conv_long - conv_short, 1e-12) / extra
    total = max(total_long - total_short, 1e-12) / extra
    return flops / conv / 1e9, 1.0 - conv / total


def compare_variants(
    variants: list[str],
    size: int,
    kernel_size: int,
    extra: int,
    rounds: int,
    device: str,
    tiny: bool,
    threads: int,
) -> dict[str, Timing]:
    set_threads(threads)
    sample = synthetic(size, kernel_size)

    def runner(variant: str):
        if variant == BASELINE:
            return partial(baseline_run, sample, device, tiny)
        speed = SpeedSettings(**{**EAGER, **VARIANTS[variant]})
        return lambda iterations, log_every: make_solver(
            iterations, device, tiny, speed, log_every
        ).run(sample, seed=0)

    runs = {v: runner(v) for v in variants}
    timings = compare(runs, extra, rounds, torch.device(device))
    if torch.device(device).type != "cpu":
        return timings
    flops = conv_flops_per_iteration(sample, device, tiny)
    for name, run in runs.items():
        timings[name].conv_gflops, timings[name].outside_conv = conv_breakdown(run, flops)
    return timings


def compare_batches(
    batches: list[int],
    size: int,
    kernel_size: int,
    extra: int,
    rounds: int,
    device: str,
    tiny: bool,
    threads: int,
    variant: str = "eager",
) -> dict[int, Timing]:
    set_threads(threads)
    speed = {**EAGER, **VARIANTS[variant]}

    def runner(batch: int):
        samples = [synthetic(size, kernel_size, index) for index in range(batch)]

        def run(iterations: int, log_every: int):
            solver = make_solver(
                iterations, device, tiny, SpeedSettings(**speed), log_every=log_every
            )
            if batch == 1:  # one at a time: the plain solver
                return solver.run(samples[0], seed=0)
            return BatchedSolver(solver).run(samples, list(range(batch)))

        return run

    return compare({b: runner(b) for b in batches}, extra, rounds, torch.device(device))


def _child(queue, function, args, cache_dir):  # pragma: no cover - runs in a subprocess
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir  # a cold compile cache: compile time counts
    try:
        queue.put(function(*args))
    except Exception as error:  # noqa: BLE001
        queue.put(error)


def isolated(function, *args):
    """``function(*args)`` in a fresh process (its own peak memory and a cold compile cache)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with tempfile.TemporaryDirectory(prefix="weakdeblur-bench-") as cache_dir:
        process = context.Process(
            target=_child, args=(queue, function, args, cache_dir), daemon=True
        )
        process.start()
        result = queue.get()
        process.join()
    if isinstance(result, Exception):
        raise result
    return result


def profile(
    size: int,
    kernel_size: int,
    device: str,
    tiny: bool,
    threads: int,
    rows: int = 25,
    variant: str = "eager",
) -> str:
    """The top operators (self CPU time) of 3 iterations of ``variant`` after 2 warm-up
    iterations."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    set_threads(threads)
    sample = synthetic(size, kernel_size)
    speed = SpeedSettings(**{**EAGER, **VARIANTS[variant]})
    make_solver(2, device, tiny, speed).run(sample, seed=0)
    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if device.startswith("cuda") else []
    )
    with torch_profile(activities=activities) as prof:
        make_solver(3, device, tiny, speed).run(sample, seed=0)
    sort = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=40)


def _ints(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--iterations", type=int, default=5, help="iterations timed after 2 warm-up iterations"
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads"
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated variants (default: baseline, eager, channels_last, compile, "
        "channels_last+compile, inference_constants; bf16 and bf16+channels_last where the "
        "device has native bf16; the GPU ones on CUDA)",
    )
    parser.add_argument("--sizes", default=None, help="image sizes (default 255,128; kernel 27)")
    parser.add_argument("--batches", default=None, help="batch sizes for part 2 (default 1,4,8,32)")
    parser.add_argument(
        "--batch-image", type=int, default=None, help="image size for part 2 (CPU 64, GPU 255)"
    )
    parser.add_argument(
        "--batch-iterations", type=int, default=None, help="extra iterations timed in part 2"
    )
    parser.add_argument(
        "--batch-variant", default="eager", help="the speed variant of part 2 (e.g. bf16)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved timing rounds (the median is reported)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print the top ops of an iteration of the first of --variants (default eager) and exit",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="no fresh process per measurement"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny network and images (smoke test)")
    args = parser.parse_args(argv)
    device = str(resolve_device(args.device))
    cuda = device.startswith("cuda")
    tiny = args.tiny
    kernel_size = 7 if tiny else 27
    sizes = _ints(args.sizes) if args.sizes else ([48] if tiny else [255, 128])
    if args.variants is not None:
        variants = [name for name in args.variants.split(",") if name]
    elif tiny:
        variants = [BASELINE, "eager", "channels_last"]
    else:
        native_bf16, _ = bf16_supported(torch.device(device))
        variants = [
            name
            for name in VARIANTS
            if (cuda or name not in GPU_ONLY) and (native_bf16 or name not in NATIVE_BF16_ONLY)
        ]
    unknown = set(variants + [args.batch_variant]) - set(VARIANTS)
    if args.batch_variant == BASELINE:
        parser.error("--batch-variant: the baseline loop fits one image; choose a solver variant")
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    batches = (
        _ints(args.batches) if args.batches is not None else ([1, 2] if tiny else [1, 4, 8, 32])
    )
    batch_image = args.batch_image or (32 if tiny else 255 if cuda else 64)
    batch_extra = args.batch_iterations or (2 if tiny else args.iterations if cuda else 3)
    measure = (lambda function, *a: function(*a)) if (args.in_process or tiny) else isolated
    set_threads(args.threads)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device={device} torch={torch.__version__} threads={args.threads} "
        f"cpu={platform.processor() or platform.machine()} cores={os.cpu_count()} load1={load:.2f}"
        + (f" gpu={torch.cuda.get_device_name()}" if cuda else "")
    )
    if args.profile:
        chosen = args.variants.split(",")[0] if args.variants else "eager"
        print(profile(sizes[-1], kernel_size, device, tiny, args.threads, variant=chosen))
        return
    memory = "peak alloc MB" if cuda else "peak RSS MB"
    print(
        f"part 1: seconds per iteration, median of {args.rounds} interleaved rounds "
        "(x base = baseline s/it / variant s/it, x eager = eager s/it / variant s/it; "
        "same process)"
    )
    print(
        f"{'image':>9} {'kernel':>7} {'variant':<26} {'s/iter':>8} {'x base':>8} {'x eager':>8} "
        f"{memory:>13} {'first run s':>12} {'conv GF/s':>10} {'outside conv':>13}"
    )
    for size in sizes:
        timings = measure(
            compare_variants,
            variants,
            size,
            kernel_size,
            args.iterations,
            args.rounds,
            device,
            tiny,
            args.threads,
        )
        references = [
            timings[name].seconds_per_iteration if name in timings else None
            for name in (BASELINE, "eager")
        ]
        for variant, timing in timings.items():
            ratios = " ".join(
                f"{reference / timing.seconds_per_iteration:8.2f}" if reference else f"{'-':>8}"
                for reference in references
            )
            breakdown = (
                f"{timing.conv_gflops:10.1f} {timing.outside_conv:13.0%}"
                if timing.conv_gflops is not None
                else f"{'-':>10} {'-':>13}"
            )
            print(
                f"{size:>5}x{size:<3} {kernel_size:>4}x{kernel_size:<2} {variant:<26} "
                f"{timing.seconds_per_iteration:8.3f} {ratios} {timing.peak_mb:13.0f} "
                f"{timing.first_run:12.1f} {breakdown}",
                flush=True,
            )
    if not batches:
        return
    print(
        f"part 2: batched images ({batch_image}x{batch_image}, kernel {kernel_size}x{kernel_size}, "
        f"{args.batch_variant}); B=1 is one image at a time (the plain solver)"
    )
    print(
        f"{'B':>4} {'s/iter':>8} {'img-it/s':>9} {'x one-at-a-time':>16} {'img/h @5000':>12} {memory:>13}"
    )
    timings = measure(
        compare_batches,
        batches,
        batch_image,
        kernel_size,
        batch_extra,
        args.rounds,
        device,
        tiny,
        args.threads,
        args.batch_variant,
    )
    single = 1 / timings[1].seconds_per_iteration if 1 in timings else None
    for batch, timing in timings.items():
        rate = batch / timing.seconds_per_iteration
        ratio = f"{rate / single:16.2f}" if single else f"{'-':>16}"
        print(
            f"{batch:>4} {timing.seconds_per_iteration:8.3f} {rate:9.2f} {ratio} "
            f"{3600 * rate / 5000:12.2f} {timing.peak_mb:13.0f}",
            flush=True,
        )
    print(f"load1 at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
