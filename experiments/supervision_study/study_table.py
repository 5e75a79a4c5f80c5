"""Per-image and mean table of the issue-12 study from finished images of any runs.

python experiments/supervision_study/study_table.py LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Each RUN_DIR holds one folder per image with its metrics.json (finished images only are
read, so the table can be made while the runs go on). A run with ``stopping=panel`` gives one
column per rule (``LABEL/rule``: its returned PSNR and stop iteration, as if it ran alone).
Columns: blurry input, x̄ = g(y) (from the first run that has one), then each run or rule.
The mean row is over the images every column has.

``--gate CSV --tau T --gated SUPERVISED:PLAIN`` adds the columns of the run labelled SUPERVISED
under the reliability gate (gate=stability): for each image, SUPERVISED's result where the
kernel stability in CSV (experiments/reliability/signals.py) is <= T, else PLAIN's (the run
without supervision of the same seed). That is exactly what a gate=stability run returns: a
distrusted image runs as plain SelfDeblur to the bit, a trusted one as the supervised run
(tests/test_reliability.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

RULES = ("fixed", "consistency", "ema_consistency", "ema")


def load(run: Path) -> dict[str, dict]:
    records = {}
    for path in sorted(run.glob("*/metrics.json")):
        record = json.loads(path.read_text())
        if record.get("status") == "ok":
            records[record["name"]] = record
    return records


def columns(label: str, records: dict[str, dict]) -> dict[str, dict[str, tuple[float, int]]]:
    """{column: {image: (psnr, stop iteration)}}."""
    first = next(iter(records.values()), {})
    if "panel" not in first:
        return {label: {n: (r["psnr"], r.get("iterations", 0)) for n, r in records.items()}}
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for rule in RULES:
        out[f"{label}/{rule}"] = {
            n: (r["panel"][rule]["psnr"], r["panel"][rule]["stop_iteration"])
            for n, r in records.items()
            if rule in r.get("panel", {})
        }
    return out


def gated(
    table: dict[str, dict[str, tuple[float, int]]],
    supervised: str,
    plain: str,
    stability: dict[str, float],
    tau: float,
) -> dict[str, dict[str, tuple[float, int]]]:
    """SUPERVISED's columns under the gate: its value where stability <= tau, else PLAIN's."""
    out = {}
    for column, values in table.items():
        if column != supervised and not column.startswith(supervised + "/"):
            continue
        name = column.replace(supervised, f"{supervised}+gate", 1)
        out[name] = {
            image: value if stability[image] <= tau else table[plain][image]
            for image, value in values.items()
            if image in stability and image in table[plain]
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--gate", type=Path, help="CSV with image,stability columns")
    parser.add_argument("--tau", type=float, default=0.34)
    parser.add_argument("--gated", action="append", default=[], metavar="SUPERVISED:PLAIN")
    args = parser.parse_args()
    runs = [argument.split("=", 1) for argument in args.runs]
    if any(len(run) != 2 for run in runs):
        parser.error("runs are LABEL=RUN_DIR")
    table: dict[str, dict[str, tuple[float, int]]] = {}
    reference: dict[str, dict] = {}
    for label, folder in runs:
        records = load(Path(folder))
        table.update(columns(label, records))
        for name, record in records.items():
            known = reference.setdefault(name, {})
            for key in ("blurry_psnr", "supervised_psnr"):  # the first run that has one
                if key in record and key not in known:
                    known[key] = record[key]
    if args.gated:
        with args.gate.open() as handle:
            stability = {row["image"]: float(row["stability"]) for row in csv.DictReader(handle)}
        for pair in args.gated:
            supervised, plain = pair.split(":", 1)
            table.update(gated(table, supervised, plain, stability, args.tau))
    names = sorted(reference)
    print("| image | blurry | x̄ = g(y) | " + " | ".join(table) + " |")
    print("| --- " * (3 + len(table)) + "|")
    for name in names:
        ref = reference[name]
        cells = [
            f"{table[c][name][0]:.2f} ({table[c][name][1]})" if name in table[c] else "-"
            for c in table
        ]
        xbar = ref.get("supervised_psnr")
        head = [name.removesuffix("_img"), f"{ref.get('blurry_psnr', math.nan):.2f}"]
        head.append(f"{xbar:.2f}" if xbar is not None else "-")
        print("| " + " | ".join(head + cells) + " |")
    common = [n for n in names if all(n in table[c] for c in table)]
    if common:
        mean = lambda values: sum(values) / len(values)  # noqa: E731
        xbars = [
            reference[n]["supervised_psnr"] for n in common if "supervised_psnr" in reference[n]
        ]
        cells = [
            f"**{mean([table[c][n][0] for n in common]):.2f}** ({mean([table[c][n][1] for n in common]):.0f})"
            for c in table
        ]
        head = [
            f"mean of {len(common)}",
            f"{mean([reference[n]['blurry_psnr'] for n in common]):.2f}",
        ]
        head.append(f"{mean(xbars):.2f}" if xbars else "-")
        print("| " + " | ".join(head + cells) + " |")


if __name__ == "__main__":
    main()
