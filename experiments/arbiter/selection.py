"""How well each no-reference criterion (weakdeblur.arbiter) picks the best of several
candidate runs of the same images, measured where the ground truth is known.

    python experiments/arbiter/selection.py RUN_FOLDER RUN_FOLDER [...] [--json out.json]

Each RUN_FOLDER is one candidate set member: a run folder whose image folders hold
``metrics.json`` (with ``psnr``), ``x.png``, ``k.pt`` and ``blurry.png``, as ``weakdeblur.run``
writes them (for example one folder per seed or per arm). Images present in at least two
folders are scored: per image, every criterion scores every candidate (lower is better) and
"picks" its lowest; the ground truth only judges the pick afterwards. Printed per criterion:
the selection accuracy (how often the pick is the best candidate by PSNR), the mean PSNR of
the picks against the mean candidate and the best one (the ceiling), and the mean Spearman
rank correlation between the criterion and the PSNR over each image's candidates (−1 is
perfect for a lower-is-better score). Calibrate on data=shake, never on Levin.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import imageio.v3 as iio
import torch

from weakdeblur.arbiter import (
    cross_scale_inconsistency,
    cross_validated_fit,
    data_fit,
    kernel_disagreement,
)


def _grey(path: Path) -> torch.Tensor:
    array = torch.from_numpy(iio.imread(path)).double() / 255.0
    return array.mean(-1) if array.ndim == 3 else array


def load(folder: Path) -> dict[str, dict]:
    found = {}
    for image in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
        metrics = json.loads((image / "metrics.json").read_text())
        if metrics.get("status") != "ok" or "psnr" not in metrics:
            continue
        found[image.name] = {
            "psnr": float(metrics["psnr"]),
            "x": _grey(image / "x.png")[None, None],
            "y": _grey(image / "blurry.png")[None, None],
            "k": torch.load(image / "k.pt", weights_only=True).double(),
            "run": str(folder),
        }
    return found


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    for rank, index in enumerate(order):
        result[index] = float(rank)
    return result


def spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else None


CRITERIA = {
    "data_fit": lambda c, all_: data_fit(c["x"], c["k"], c["y"]),
    "cross_validated_fit": lambda c, all_: cross_validated_fit(c["y"], c["k"]),
    "cross_scale_inconsistency": lambda c, all_: cross_scale_inconsistency(c["x"], c["k"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args(argv)
    runs = [load(folder) for folder in arguments.runs]
    names = sorted({name for run in runs for name in run if sum(name in r for r in runs) > 1})
    if not names:
        print("no image has two or more finished candidates")
        return 2
    per_criterion: dict[str, dict[str, list]] = {}
    rows = []
    for name in names:
        candidates = [run[name] for run in runs if name in run]
        psnrs = [c["psnr"] for c in candidates]
        scores = {key: [f(c, candidates) for c in candidates] for key, f in CRITERIA.items()}
        scores["kernel_disagreement"] = kernel_disagreement([c["k"] for c in candidates])
        best = max(psnrs)
        row = {"image": name, "candidates": len(candidates), "psnr": psnrs}
        for key, values in scores.items():
            pick = min(range(len(values)), key=values.__getitem__)
            entry = per_criterion.setdefault(key, {"hit": [], "picked": [], "rho": []})
            entry["hit"].append(psnrs[pick] == best)
            entry["picked"].append(psnrs[pick])
            rho = spearman(values, psnrs)
            if rho is not None:
                entry["rho"].append(rho)
            row[key] = values
        rows.append(row)
    mean_candidate = statistics.fmean(statistics.fmean(r["psnr"]) for r in rows)
    ceiling = statistics.fmean(max(r["psnr"]) for r in rows)
    print(f"{len(rows)} images, candidates per image: {[r['candidates'] for r in rows]}")
    print(f"mean candidate {mean_candidate:.2f} dB, best per image (ceiling) {ceiling:.2f} dB")
    print(f"{'criterion':<28} {'accuracy':>9} {'picked dB':>10} {'rank corr':>10}")
    summary = {}
    for key, entry in per_criterion.items():
        accuracy = statistics.fmean(entry["hit"])
        picked = statistics.fmean(entry["picked"])
        rho = statistics.fmean(entry["rho"]) if entry["rho"] else None
        summary[key] = {"accuracy": accuracy, "picked_psnr": picked, "spearman": rho}
        rho_text = f"{rho:10.2f}" if rho is not None else f"{'-':>10}"
        print(f"{key:<28} {accuracy:9.2f} {picked:10.2f} {rho_text}")
    if arguments.json:
        arguments.json.write_text(
            json.dumps(
                {
                    "mean_candidate": mean_candidate,
                    "ceiling": ceiling,
                    "criteria": summary,
                    "images": [
                        {k: v for k, v in row.items() if k != "run"} for row in rows
                    ],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
