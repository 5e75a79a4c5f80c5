"""Markdown table of stopping rules from finished runs: python experiments/stopping/table.py PATH...

One row per summary.json found under the paths (a run, or each job of a sweep): experiment,
stopping policy, mean returned PSNR, mean peak PSNR, mean detection gap, mean iterations and
mean seconds per image, over the images that finished. A run with ``stopping=panel`` gives one
row per rule of the panel (each rule as if it ran alone; seconds pro rata of its stop).
"""

import json
import sys
from pathlib import Path


def rows(paths):
    for root in paths:
        for summary_file in sorted(Path(root).rglob("summary.json")):
            summary = json.loads(summary_file.read_text())
            done = [r for r in summary["per_image"] if r.get("status") == "ok"]
            if not done:
                continue
            experiment = done[0].get("experiment", "?")
            if "panel" in summary:
                for rule, mean in summary["panel"].items():
                    yield (
                        experiment,
                        f"{rule} (panel)",
                        int(mean["images"]),
                        *(
                            mean.get(k)
                            for k in ("psnr", "peak_psnr", "detection_gap", "stop_iteration")
                        ),
                        mean.get("seconds"),
                    )
                continue
            mean = summary["mean"]
            yield (
                done[0].get("experiment", "?"),
                done[0].get("stopping_policy", "?"),
                len(done),
                *(
                    mean.get(k)
                    for k in ("psnr", "peak_psnr", "detection_gap", "iterations", "seconds")
                ),
            )


def cell(value, fmt):
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def main(paths):
    print("| experiment | rule | images | PSNR | peak PSNR | gap (dB) | iterations | s/image |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for experiment, policy, count, psnr, peak, gap, iterations, seconds in rows(paths):
        print(
            f"| {experiment} | {policy} | {count} | {cell(psnr, '.2f')} | {cell(peak, '.2f')} | "
            f"{cell(gap, '.2f')} | {cell(iterations, '.0f')} | {cell(seconds, '.1f')} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["multirun"])
