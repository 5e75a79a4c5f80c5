"""Per-image and mean table of the issue-12 study from finished images of any runs.

python experiments/supervision_study/study_table.py LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Each RUN_DIR holds one folder per image with its metrics.json (finished images only are
read, so the table can be made while the runs go on). A run with ``stopping=panel`` gives one
column per rule (``LABEL/rule``: its returned PSNR and stop iteration, as if it ran alone).
Columns: blurry input, x̄ = g(y) (from the first run that has one), then each run or rule.
The mean row is over the images every column has.
"""

from __future__ import annotations

import json
import math
import sys
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


def main(arguments: list[str]) -> None:
    runs = [argument.split("=", 1) for argument in arguments]
    if not runs or any(len(run) != 2 for run in runs):
        sys.exit(__doc__)
    table: dict[str, dict[str, tuple[float, int]]] = {}
    reference: dict[str, dict] = {}
    for label, folder in runs:
        records = load(Path(folder))
        table.update(columns(label, records))
        for name, record in records.items():
            reference.setdefault(name, {}).update(
                {k: record[k] for k in ("blurry_psnr", "supervised_psnr") if k in record}
            )
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
    main(sys.argv[1:])
