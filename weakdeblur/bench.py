"""Benchmark: seconds per iteration of the paper configuration (``make bench``).

Times the real solver loop (G_x, G_k, forward model, loss, Adam) on a
synthetic image for two budgets and reports the difference per iteration, so
that set-up and the final logging step cancel out. Prints figures measured in
this one run only: this is a script, not a test.

    python -m weakdeblur.bench                 # 255x255 / 27x27 and the 128 crop / 27x27
    python -m weakdeblur.bench --tiny          # seconds, for the test suite
"""

from __future__ import annotations

import argparse
import platform
import time
from functools import partial

import torch

from weakdeblur.data.sample import Sample
from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import FidelityLoss
from weakdeblur.solver import InputSettings, OptimSettings, Solver, resolve_device


def make_solver(iterations: int, device: str, tiny: bool) -> Solver:
    widths = (
        dict(
            channels_down=[16] * 3,
            channels_up=[16] * 3,
            channels_skip=[4] * 3,
            non_local_scales=[2],
        )
        if tiny
        else {}
    )
    return Solver(
        partial(SkipNetwork, **widths),
        partial(KernelMLP, hidden=64 if tiny else 1000),
        fidelity=FidelityLoss(0.2),
        optim=OptimSettings(iterations=iterations, log_every=iterations, snapshot_every=0),
        inputs=InputSettings(),
        device=device,
    )


def seconds_per_iteration(
    size: int, kernel_size: int, short: int, long: int, device: str, tiny: bool
) -> float:
    generator = torch.Generator().manual_seed(0)
    sample = Sample(
        "bench", torch.rand(1, 1, size, size, generator=generator), (kernel_size, kernel_size)
    )
    timings = []
    for iterations in (
        short,
        short,
        long,
    ):  # the first run warms up (allocator, kernels) and is dropped
        solver = make_solver(iterations, device, tiny)
        if solver.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        solver.run(sample, seed=0)
        if solver.device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - started)
    return (timings[2] - timings[1]) / (long - short)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--iterations", type=int, default=5, help="extra iterations timed beyond the short run"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny network and images (smoke test)")
    args = parser.parse_args(argv)
    device = str(resolve_device(args.device))
    cases = [(48, 7)] if args.tiny else [(255, 27), (128, 27)]
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()}"
    )
    print(f"{'image':>9} {'kernel':>7} {'s/iter':>9} {'iter/s':>8} {'5000 it (min)':>14}")
    for size, kernel_size in cases:
        seconds = seconds_per_iteration(
            size, kernel_size, 2, 2 + args.iterations, device, args.tiny
        )
        print(
            f"{size:>5}x{size:<3} {kernel_size:>4}x{kernel_size:<2} {seconds:9.3f} {1 / seconds:8.2f} {5000 * seconds / 60:14.1f}"
        )


if __name__ == "__main__":
    main()
