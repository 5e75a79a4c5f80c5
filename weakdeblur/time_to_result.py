"""Time to result: the faithful SelfDeblur run against faster configurations (``make bench``).

Runs ``+exp=selfdeblur`` on one image to its full budget (the paper's 5000 iterations), then
each candidate configuration (speed switches, shorter budgets, adaptive stopping) on the same
image, one after the other in this process, and prints for each: wall seconds, iterations,
final PSNR, the speed-up against the reference run, and whether it reached the reference's final
PSNR. The headline is the fastest candidate that reached it. A second column, ``first reach s``,
reads each run's history for the first logged iteration at or above the reference's final PSNR:
an oracle (it uses the ground truth), shown for context, never used to stop.

The image: a central 128-px Levin crop (``--image``, default im1_kernel4_img) when the data root
(``WEAKDEBLUR_DATA``) holds levin/, else (and with ``--tiny``) the embedded demo. Figures come from this one run on
this machine (a script, not a test); a loaded machine slows all runs alike only roughly, so run
it on a quiet one.

    python -m weakdeblur.time_to_result                          # Levin crop, 5000 iterations
    python -m weakdeblur.time_to_result --candidate "solver.bf16=auto optim.iterations=2000"
    python -m weakdeblur.time_to_result --tiny                   # seconds, for the test suite
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize

from weakdeblur.run import run_images

REFERENCE = "+exp=selfdeblur"
FAST = "solver.bf16=auto solver.channels_last=auto"
CANDIDATES = (  # the switches, a shorter budget, adaptive stopping (no supervisor needed)
    FAST,
    f"{FAST} optim.iterations=2500",
    f"{FAST} optim.iterations=1500",
    f"{FAST} stopping=ema_wmv",
)
TINY = ("generator=small", "optim.iterations=30", "optim.log_every=5", "stopping.check_every=5")


@dataclass
class Outcome:
    label: str
    seconds: float
    iterations: int
    psnr: float
    history: list[dict]

    def first_reach(self, target: float) -> float | None:
        """Seconds at the first logged iteration whose PSNR is at least ``target``."""
        for row in self.history:
            if row.get("psnr", float("-inf")) >= target:
                return float(row["seconds"])
        return None


def image_overrides(image: str, tiny: bool) -> list[str]:
    root = os.environ.get("WEAKDEBLUR_DATA")
    if root and not tiny and (Path(root) / "levin" / f"{image}.png").is_file():
        return ["data=levin", "data.crop=128", f"data.images=[{image}]"]
    return ["data=demo"]


def solve(label: str, overrides: list[str], folder: Path) -> Outcome:
    with initialize(config_path="../conf", version_base="1.3"):  # relative to this file
        cfg = compose(config_name="config", overrides=overrides)
    code = run_images(cfg, folder)
    records = [json.loads(p.read_text()) for p in folder.glob("*/metrics.json")]
    if code != 0 or len(records) != 1 or records[0].get("status") != "ok":
        raise SystemExit(f"time_to_result: the run '{label}' failed (exit {code}); see {folder}")
    record = records[0]
    history = json.loads((folder / record["name"] / "history.json").read_text())
    return Outcome(label, record["seconds"], record["iterations"], record["psnr"], history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default="im1_kernel4_img", help="the Levin image (128 crop)")
    parser.add_argument(
        "--candidate",
        action="append",
        help="Hydra overrides of one candidate, added to +exp=selfdeblur (repeatable; "
        f"default: {'; '.join(CANDIDATES)})",
    )
    parser.add_argument("--threads", default="1", help="torch threads of every run (default 1)")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and budget (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args(argv)
    logging.getLogger("weakdeblur").setLevel(logging.WARNING)
    common = [
        REFERENCE,
        *image_overrides(args.image, args.tiny),
        "logger=none",
        "progress=false",
        "metrics.lpips=false",
        "optim.snapshot_every=0",
        "seed=0",
        f"threads={args.threads}",
        *(TINY if args.tiny else ()),
    ]
    candidates = args.candidate or list(CANDIDATES)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        print(f"time to result: {' '.join(common)}", flush=True)
        reference = solve("selfdeblur", common, root / "reference")
        outcomes = [
            solve(candidate, [*common, *shlex.split(candidate)], root / f"candidate{index}")
            for index, candidate in enumerate(candidates)
        ]
    target = reference.psnr
    print(
        f"{'configuration':<58} {'seconds':>8} {'iters':>6} {'PSNR':>6} {'speed-up':>8} "
        f"{'reached':>7} {'first reach s':>13}"
    )
    best: Outcome | None = None
    for outcome in [reference, *outcomes]:
        reached = outcome.psnr >= target
        first = outcome.first_reach(target)
        print(
            f"{outcome.label:<58} {outcome.seconds:8.1f} {outcome.iterations:6d} "
            f"{outcome.psnr:6.2f} {reference.seconds / outcome.seconds:8.2f} "
            f"{'yes' if reached else 'no':>7} {first if first is not None else float('nan'):13.1f}"
        )
        if (
            outcome is not reference
            and reached
            and (best is None or outcome.seconds < best.seconds)
        ):
            best = outcome
    if best is None:
        print(f"time to result: no candidate reached the reference's {target:.2f} dB")
    else:
        print(
            f"time to result: {reference.seconds / best.seconds:.2f}x ({best.label}: "
            f"{best.seconds:.0f} s, {best.psnr:.2f} dB; selfdeblur {reference.seconds:.0f} s, "
            f"{target:.2f} dB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
