"""The g-quality summary table from the ``summary.json`` files under a folder.

    python experiments/supervisors/table.py experiments/supervisors

Each ``SUPERVISOR/DATA/summary.json`` (written by ``python -m weakdeblur.evaluate_supervisor``)
becomes one row: blurry and x̄ PSNR/SSIM, the gain, the kernel error and error ratio where g
estimates a kernel, and the seconds per image.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = "| g | data | images | blurry PSNR / SSIM | x̄ PSNR / SSIM | gain | kernel error | error ratio | s / image |"


def _number(summary: dict, key: str, digits: int) -> str:
    value = summary.get(key)
    return "" if value is None else f"{value:.{digits}f}"


def row(supervisor: str, data: str, summary: dict) -> str:
    cells = [
        supervisor,
        data,
        str(summary["images"]),
        f"{summary['blurry_psnr']:.2f} / {summary['blurry_ssim']:.3f}",
        f"{summary['xbar_psnr']:.2f} / {summary['xbar_ssim']:.3f}",
        f"{summary['gain_db']:+.2f}",
        _number(summary, "kernel_error", 2),
        _number(summary, "error_ratio", 2),
        _number(summary, "seconds", 1),
    ]
    return "| " + " | ".join(cells) + " |"


def table(root: Path) -> str:
    lines = [COLUMNS, "| " + " | ".join(["---"] * (COLUMNS.count("|") - 1)) + " |"]
    for path in sorted(root.glob("*/*/summary.json")):
        supervisor, data = path.parent.parent.name, path.parent.name
        lines.append(row(supervisor, data, json.loads(path.read_text())))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python experiments/supervisors/table.py FOLDER", file=sys.stderr)
        return 2
    sys.stdout.write(table(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
