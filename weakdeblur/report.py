"""Tables and plots from local results: ``python -m weakdeblur.report PATH... [--out DIR]``.

``PATH`` may be a single run (``outputs/<experiment>/<run_name>/``), a whole
sweep (``multirun/<run_name>/``, every job below it), or any folder above
them: every folder holding ``.hydra/config.yaml`` or ``summary.json`` is a
run, and its sub-folders holding ``metrics.json`` are images. Nothing but
these local artefacts is read (no W&B).

Experiments are named by the run's ``experiment`` plus the overrides that
differ between the runs found (``data.images``, ``logger``, ``threads``, ...
excepted), so a sweep over ``+exp=a,b`` gives rows ``a`` and ``b``, and a
sweep over ``optim.iterations=1000,2000`` gives ``selfdeblur
optim.iterations=1000`` and ``selfdeblur optim.iterations=2000``. Jobs that
only split the images of one experiment (``data.images=...``) are merged.

Written to ``--out`` (default: ``<PATH>/report`` for one path, else ``./report``):

* ``results.md``: per experiment mean ± sample standard deviation over the
  images that finished (status ``ok``) of PSNR, SSIM, LPIPS, error ratio,
  kernel error, iterations and seconds; a per-image table; the figures.
* ``results.csv``: the per-experiment table (``<metric>_mean``, ``<metric>_std``).
* ``per_image.csv``: one row per (experiment, image).
* ``psnr_vs_iteration.png``, ``stop_iterations.png``, ``montage_<image>.png``
  (per image: y, then x̂ and k̂ of each experiment, then the ground truth x and k).

A rich table of the per-experiment means is printed to the terminal.

``--paired BASELINE CANDIDATE`` compares two methods on the same images and seeds
(:mod:`weakdeblur.paired`): a method is a report label without its ``seed=`` part, so a sweep
``-m +exp=selfdeblur,weak_rec_es seed=0,1,2`` has the methods ``selfdeblur`` and
``weak_rec_es``. Per image the mean over the seeds both have, the paired difference with a
bootstrap interval over images, wins and losses: ``paired.md`` / ``paired.json``, a section of
``results.md``, and one line on the terminal.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from weakdeblur.paired import PairedComparison, PairingError, compare
from weakdeblur.paired import markdown as paired_markdown
from weakdeblur.runtime.preflight import PreflightError, check_output_folder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger("weakdeblur.report")

METRICS = ("psnr", "ssim", "lpips", "error_ratio", "kernel_error", "iterations", "seconds")
HEADERS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "error_ratio": "error ratio",
    "kernel_error": "kernel error",
    "iterations": "iterations",
    "seconds": "seconds",
}
FORMATS = {
    "psnr": ".2f",
    "ssim": ".4f",
    "lpips": ".4f",
    "error_ratio": ".3f",
    "kernel_error": ".3f",
    "iterations": ".0f",
    "seconds": ".1f",
}
# overrides that do not make a different experiment
NEUTRAL_OVERRIDES = (
    "logger",
    "progress",
    "device",
    "threads",
    "resume",
    "run_name",
    "data.images",
    "exp",
    "experiment",
)
SKIPPED_FOLDERS = {"wandb", ".submitit", ".hydra", "report"}
MISSING = "-"  # the cell of a value that does not exist
# curves with fewer points than this get markers (one logged point draws no line)
FEW_POINTS = 20


class ReportError(Exception):
    """A user-caused problem (missing path, nothing to report): one clear message."""


@dataclass
class Run:
    folder: Path
    experiment: str
    overrides: dict[str, str] = field(default_factory=dict)
    label: str = ""


@dataclass
class ImageResult:
    run: Run
    name: str
    folder: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    modified: float

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "?"))

    def value(self, key: str) -> float | None:
        value = self.metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------- discovery


def _is_run(folder: Path) -> bool:
    return (folder / ".hydra" / "config.yaml").is_file() or (folder / "summary.json").is_file()


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Every run folder at or below ``paths`` (sorted, without duplicates)."""
    runs: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise ReportError(f"no such file or folder: {path}")
        if not path.is_dir():
            raise ReportError(f"not a folder: {path}")
        for root, folders, _ in os.walk(path):
            folders[:] = sorted(f for f in folders if f not in SKIPPED_FOLDERS)
            if _is_run(Path(root)):
                runs.add(Path(root).resolve())
    return sorted(runs)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log.warning("skipping unreadable %s: %s", path, error)
        return None


def _load_run(folder: Path) -> tuple[Run, list[ImageResult]]:
    config_path, overrides_path = (
        folder / ".hydra" / "config.yaml",
        folder / ".hydra" / "overrides.yaml",
    )
    config: dict[str, Any] = {}
    if config_path.is_file():
        config = yaml.safe_load(config_path.read_text()) or {}
    overrides: dict[str, str] = {}
    if overrides_path.is_file():
        for item in yaml.safe_load(overrides_path.read_text()) or []:
            key, _, value = str(item).partition("=")
            key = key.lstrip("+~")
            if key not in NEUTRAL_OVERRIDES and not key.startswith("hydra"):
                overrides[key] = value
    images: list[ImageResult] = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        metrics_path = child / "metrics.json"
        if child.name in SKIPPED_FOLDERS or not metrics_path.is_file():
            continue
        metrics = _read_json(metrics_path)
        if not isinstance(metrics, dict):
            continue
        history = _read_json(child / "history.json") if (child / "history.json").is_file() else []
        images.append(
            ImageResult(
                None,  # type: ignore[arg-type]  # set below
                str(metrics.get("name", child.name)),
                child,
                metrics,
                history if isinstance(history, list) else [],
                metrics_path.stat().st_mtime,
            )
        )
    experiment = str(
        config.get("experiment")
        or next((i.metrics["experiment"] for i in images if "experiment" in i.metrics), None)
        or folder.name
    )
    run = Run(folder, experiment, overrides)
    for image in images:
        image.run = run
    return run, images


def varying_overrides(runs: Sequence[Run]) -> list[str]:
    """The override keys whose values differ between the runs (the swept keys), sorted."""
    keys = sorted({key for run in runs for key in run.overrides})
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def label_runs(runs: Sequence[Run]) -> None:
    """``experiment`` plus the overrides whose values differ between the runs."""
    varying = varying_overrides(runs)
    for run in runs:
        parts = [f"{key}={run.overrides[key]}" for key in varying if key in run.overrides]
        run.label = " ".join([run.experiment, *parts])


def collect(paths: Sequence[str | Path]) -> list[ImageResult]:
    """Every image result under ``paths``; one per (experiment, image), the newest."""
    loaded = [_load_run(folder) for folder in find_runs(paths)]
    if not loaded:
        raise ReportError(
            "no results found under " + ", ".join(map(str, paths)) + " (expected run folders with "
            ".hydra/config.yaml or summary.json and image folders with metrics.json)"
        )
    label_runs([run for run, _ in loaded])
    newest: dict[tuple[str, str], ImageResult] = {}
    for _, images in loaded:
        for image in images:
            key = (image.run.label, image.name)
            if key not in newest or image.modified > newest[key].modified:
                newest[key] = image
    if not newest:
        raise ReportError("run folders found, but no image has a metrics.json yet")
    return sorted(newest.values(), key=lambda i: (i.run.label, i.name))


# ---------------------------------------------------------------- paired comparison


def method_label(run: Run) -> str:
    """The run's label without its ``seed=`` part: the method whose seeds are paired."""
    return " ".join(part for part in run.label.split(" ") if not part.startswith("seed="))


def draws(results: Sequence[ImageResult], method: str, metric: str) -> dict[tuple[str, int], float]:
    """``(image, seed) → metric`` of the finished images of ``method``."""
    found: dict[tuple[str, int], float] = {}
    for result in results:
        value = result.value(metric)
        if method_label(result.run) != method or result.status != "ok" or value is None:
            continue
        found[(result.name, int(result.metrics.get("seed", 0)))] = value
    return found


def paired_comparison(
    results: Sequence[ImageResult],
    baseline: str,
    candidate: str,
    metric: str = "psnr",
    resamples: int = 10_000,
) -> PairedComparison:
    """:func:`weakdeblur.paired.compare` of two methods found in ``results``."""
    methods = sorted({method_label(r.run) for r in results})
    for name in (baseline, candidate):
        if name not in methods:
            raise ReportError(f"no method {name!r}; methods found: {', '.join(methods)}")
    try:
        return compare(
            draws(results, baseline, metric),
            draws(results, candidate, metric),
            metric=metric,
            names=(baseline, candidate),
            resamples=resamples,
        )
    except PairingError as error:
        raise ReportError(str(error)) from error


# ---------------------------------------------------------------- tables


def summarise(results: Sequence[ImageResult]) -> list[dict[str, Any]]:
    """Per experiment: counts and mean/std (sample, n − 1) over the images with status ok."""
    rows = []
    for label in sorted({r.run.label for r in results}):
        mine = [r for r in results if r.run.label == label]
        done = [r for r in mine if r.status == "ok"]
        row: dict[str, Any] = {
            "experiment": label,
            "images": len(mine),
            "ok": len(done),
            "failed": sum(r.status == "failed" for r in mine),
            "unfinished": sum(r.status not in ("ok", "failed") for r in mine),
        }
        for metric in METRICS:
            values = [v for v in (r.value(metric) for r in done) if v is not None]
            row[f"{metric}_mean"] = statistics.fmean(values) if values else None
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
            row[f"{metric}_n"] = len(values)
        rows.append(row)
    return rows


def _cell(value: Any, fmt: str) -> str:
    return MISSING if value is None else format(value, fmt)


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values present (``None`` when none is)."""
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None


def mean_std(row: dict[str, Any], metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if mean is None:
        return MISSING
    fmt = FORMATS[metric]
    return format(mean, fmt) + ("" if std is None else f" ± {format(std, fmt)}")


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def per_image_rows(results: Sequence[ImageResult]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row: dict[str, Any] = {"experiment": r.run.label, "image": r.name, "status": r.status}
        for key in (*METRICS, "returned_iteration", "blurry_psnr", "peak_psnr", "stop_psnr"):
            row[key] = r.value(key)
        row["folder"] = _display(r.folder)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _markers(points: int, size: float) -> dict[str, Any]:
    """Line style keywords that show a curve of ``points`` points: markers when it has few."""
    return {"marker": "o", "markersize": size} if points < FEW_POINTS else {}


def psnr_vs_iteration_figure(results: Sequence[ImageResult]) -> Figure | None:
    """The figure of :func:`plot_psnr_vs_iteration` (``None`` when no image logged PSNR).

    Curves of fewer than :data:`FEW_POINTS` points get markers, so that a short run (one
    logged point per image) is visible: a line through one point draws nothing.
    """
    plt = _plt()
    figure, axis = plt.subplots(figsize=(5.5, 3.6), dpi=90)
    drawn = False
    for index, label in enumerate(sorted({r.run.label for r in results})):
        colour = f"C{index % 10}"
        curves: dict[float, list[float]] = {}
        for r in results:
            if r.run.label != label:
                continue
            points = [(row["iteration"], row["psnr"]) for row in r.history if "psnr" in row]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            axis.plot(xs, ys, color=colour, alpha=0.25, linewidth=0.8, **_markers(len(xs), 2.5))
            for x, y in points:
                curves.setdefault(x, []).append(y)
        if curves:
            xs = sorted(curves)
            means = [statistics.fmean(curves[x]) for x in xs]
            axis.plot(xs, means, color=colour, label=label, **_markers(len(xs), 4))
            drawn = True
    if not drawn:
        plt.close(figure)
        return None
    axis.set_xlabel("iteration")
    axis.set_ylabel("PSNR (dB), aligned")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_psnr_vs_iteration(results: Sequence[ImageResult], path: Path) -> bool:
    """Mean PSNR over the images at each logged iteration (thick) and each image (thin)."""
    figure = psnr_vs_iteration_figure(results)
    if figure is None:
        return False
    figure.savefig(path)
    _plt().close(figure)
    return True


def plot_stop_iterations(results: Sequence[ImageResult], path: Path) -> bool:
    """Where each image stopped (dots) and the returned iterate (crosses), per experiment."""
    plt = _plt()
    labels = sorted({r.run.label for r in results})
    figure, axis = plt.subplots(figsize=(max(3.5, 1.2 * len(labels) + 2), 3.2), dpi=90)
    drawn = False
    for index, label in enumerate(labels):
        mine = [r for r in results if r.run.label == label and r.value("iterations") is not None]
        for offset, r in enumerate(mine):
            x = index + 0.08 * (offset - (len(mine) - 1) / 2)
            axis.plot(x, r.value("iterations"), "o", color=f"C{index % 10}", markersize=4)
            if r.value("returned_iteration") not in (None, r.value("iterations")):
                axis.plot(x, r.value("returned_iteration"), "x", color=f"C{index % 10}")
            drawn = True
    if drawn:
        axis.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=7)
        axis.set_ylabel("stop iteration")
        axis.set_ylim(bottom=0)
        axis.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        figure.savefig(path)
    plt.close(figure)
    return drawn


def _image(path: Path):
    import imageio.v3 as iio

    return iio.imread(path) if path.is_file() else None


def plot_montage(name: str, results: Sequence[ImageResult], path: Path) -> bool:
    """One row per experiment: y, x̂, k̂, ground truth x, ground truth k."""
    plt = _plt()
    mine = [r for r in results if r.name == name]
    if not mine:
        return False
    columns = ["y", "x̂", "k̂", "x (truth)", "k (truth)"]
    files = ["blurry.png", "x.png", "k.png", "sharp.png", "k_true.png"]
    figure, axes = plt.subplots(
        len(mine),
        len(columns),
        figsize=(1.6 * len(columns), 1.7 * len(mine)),
        dpi=80,
        squeeze=False,
    )
    for row, r in enumerate(mine):
        for column, file in enumerate(files):
            axis = axes[row][column]
            axis.set_xticks([])
            axis.set_yticks([])
            picture = _image(r.folder / file)
            if picture is not None:
                grey = picture.ndim == 2 or picture.shape[-1] == 1
                axis.imshow(picture.squeeze(), cmap="gray" if grey else None, vmin=0, vmax=255)
            else:
                axis.text(
                    0.5, 0.5, "n/a", ha="center", va="center", fontsize=7, transform=axis.transAxes
                )
            if row == 0:
                axis.set_title(columns[column], fontsize=8)
        psnr = r.value("psnr")
        axes[row][0].set_ylabel(
            r.run.label.replace(" ", "\n") + ("" if psnr is None else f"\n{psnr:.2f} dB"),
            fontsize=7,
        )
    figure.suptitle(name, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


# ---------------------------------------------------------------- outputs


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text: int = 1) -> list[str]:
    """A Markdown table whose plain text is aligned too: every cell padded to its column's
    width, the first ``text`` columns left-aligned, the others (numbers, :data:`MISSING`)
    right-aligned."""
    from rich.cells import cell_len

    widths = [
        max(3, *(cell_len(cells[i]) for cells in [header, *rows])) for i in range(len(header))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            (cell + " " * (width - cell_len(cell)))
            if i < text
            else (" " * (width - cell_len(cell)) + cell)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * w) if i < text else ("-" * (w - 1) + ":") for i, w in enumerate(widths)]
    return [line(header), line(rule), *map(line, rows)]


def summary_table(summary: list[dict[str, Any]]) -> list[str]:
    """The per-experiment table (Markdown lines): mean ± std of :data:`METRICS`."""
    header = ["experiment", "images (ok)", *(HEADERS[m] for m in METRICS)]
    rows = [
        [row["experiment"], f"{row['images']} ({row['ok']})"]
        + [mean_std(row, metric) for metric in METRICS]
        for row in summary
    ]
    return _table(header, rows, text=1)


def mean_rows(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per experiment, a row ``image = "mean"``: each column's mean over the images where
    it is present (any status; ``None`` where no image has it); ``status`` counts the ok."""
    rows = []
    for label in sorted({row["experiment"] for row in images}):
        mine = [row for row in images if row["experiment"] == label]
        ok = sum(row["status"] == "ok" for row in mine)
        row: dict[str, Any] = {
            "experiment": label,
            "image": "mean",
            "status": f"{ok}/{len(mine)} ok",
        }
        for key in ("blurry_psnr", *METRICS):
            row[key] = _mean([r[key] for r in mine])
        rows.append(row)
    return rows


def per_image_table(images: list[dict[str, Any]]) -> list[str]:
    """The per-image table (Markdown lines), by image then experiment, then the mean rows."""
    header = ["image", "experiment", "status", "blurry PSNR", *(HEADERS[m] for m in METRICS)]
    ordered = sorted(images, key=lambda r: (r["image"], r["experiment"])) + mean_rows(images)
    rows = [
        [row["image"], row["experiment"], row["status"], _cell(row["blurry_psnr"], ".2f")]
        + [_cell(row[metric], FORMATS[metric]) for metric in METRICS]
        for row in ordered
    ]
    return _table(header, rows, text=3)


def portfolio_table(results: Sequence[ImageResult]) -> list[str]:
    """Portfolio runs (:mod:`weakdeblur.runtime.portfolio`): per image, every candidate's PSNR
    side by side, ``*`` on the arbiter's choice, ``p`` on a pruned candidate, then the chosen and
    the best PSNR of those that ran to the end (the arbiter's field); a last line says how often
    the choice was the best. Empty when no result is a portfolio's."""
    chosen = [r for r in results if isinstance(r.metrics.get("portfolio"), dict)]
    if not chosen:
        return []
    names = list(
        dict.fromkeys(c["name"] for r in chosen for c in r.metrics["portfolio"]["candidates"])
    )
    rows, hits = [], 0
    for result in sorted(chosen, key=lambda r: (r.name, r.run.label)):
        portfolio = result.metrics["portfolio"]
        psnr = {c["name"]: c.get("psnr") for c in portfolio["candidates"]}
        pruned = {c["name"] for c in portfolio["candidates"] if c.get("pruned_at")}
        cells = []
        for name in names:
            mark = "*" if name == portfolio["chosen"] else "p" if name in pruned else ""
            cells.append(_cell(psnr.get(name), ".2f") + mark)
        known = [  # the arbiter's field: a pruned candidate's PSNR is from its pruning
            value
            for name, value in psnr.items()
            if isinstance(value, (int, float)) and name not in pruned
        ]
        best = max(known) if known else None
        hits += best is not None and psnr.get(portfolio["chosen"]) == best
        rows.append(
            [result.name, result.run.label, *cells]
            + [_cell(psnr.get(portfolio["chosen"]), ".2f"), _cell(best, ".2f")]
        )
    lines = _table(["image", "experiment", *names, "chosen", "best"], rows, text=2)
    return lines + [
        "",
        f"The arbiter chose the best candidate on {hits} of {len(rows)} images (best: of the "
        "candidates that ran to the end; p: pruned, its PSNR where it stopped).",
    ]


def markdown(
    summary: list[dict[str, Any]],
    images: list[dict[str, Any]],
    sources: Sequence[Path],
    figures: Sequence[str],
    paired: PairedComparison | None = None,
    portfolio: Sequence[str] = (),
) -> str:
    lines = ["# Results", "", "Sources:", ""]
    lines += [f"- `{_display(source)}`" for source in sources]
    lines += [
        "",
        "Mean ± sample standard deviation over the images that finished (status ok); "
        "PSNR/SSIM/LPIPS after Levin alignment; error ratio with the project's "
        "non-blind deconvolution; iterations = where the run stopped.",
        "",
    ]
    lines += summary_table(summary)
    if paired is not None:
        lines += ["", "## Paired comparison (same images and seeds)", ""]
        lines += paired_markdown(paired)
    lines += [
        "",
        "## Per image",
        "",
        f"`{MISSING}`: no value. The `mean` rows average each column over the images that "
        "have a value there (any status).",
        "",
    ]
    lines += per_image_table(images)
    if portfolio:
        lines += ["", "## Portfolio candidates (PSNR; * the arbiter's choice, p pruned)", ""]
        lines += portfolio
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{figure}]({figure})" for figure in figures]
    return "\n".join(lines) + "\n"


def print_table(summary: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="weakdeblur results (mean ± std over finished images)")
    table.add_column("experiment", no_wrap=True)
    table.add_column("ok/images", justify="right")
    for metric in METRICS:
        table.add_column(HEADERS[metric], justify="right")
    for row in summary:
        table.add_row(
            row["experiment"],
            f"{row['ok']}/{row['images']}",
            *(mean_std(row, metric) for metric in METRICS),
        )
    longest = max((len(row["experiment"]) for row in summary), default=10)
    Console(width=max(100, longest + 17 * (len(METRICS) + 1))).print(table)


def _display(path: Path) -> str:
    """``path`` relative to the working directory when below it (portable reports)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    figures: bool = True,
    paired: tuple[str, str] | None = None,
    metric: str = "psnr",
) -> Path:
    """Write the report for ``paths`` into ``out``; return ``out``. ``paired``: (baseline,
    candidate) methods to compare on ``metric`` over the same images and seeds."""
    results = collect(paths)
    comparison = paired_comparison(results, *paired, metric=metric) if paired else None
    if out is None:
        out = Path(paths[0]) / "report" if len(paths) == 1 else Path("report")
    out = Path(out)
    try:
        check_output_folder(out)
    except PreflightError as error:
        raise ReportError(str(error)) from error
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    images = per_image_rows(results)
    summary_columns = ["experiment", "images", "ok", "failed", "unfinished"]
    summary_columns += [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "n")]
    _write_csv(out / "results.csv", summary, summary_columns)
    _write_csv(out / "per_image.csv", images, list(images[0]))
    written: list[str] = []
    if figures:
        if plot_psnr_vs_iteration(results, out / "psnr_vs_iteration.png"):
            written.append("psnr_vs_iteration.png")
        if plot_stop_iterations(results, out / "stop_iterations.png"):
            written.append("stop_iterations.png")
        for name in sorted({r.name for r in results}):
            file = f"montage_{_safe(name)}.png"
            if plot_montage(name, results, out / file):
                written.append(file)
    sources = sorted({r.run.folder for r in results})
    if comparison is not None:
        (out / "paired.md").write_text("\n".join(paired_markdown(comparison)) + "\n")
        (out / "paired.json").write_text(
            json.dumps(
                {
                    **comparison.summary(),
                    "per_image": [
                        {**vars(image), "difference": image.difference}
                        for image in comparison.images
                    ],
                },
                indent=1,
            )
        )
    text = markdown(summary, images, sources, written, comparison, portfolio_table(results))
    temporary = out / ".results.md.tmp"
    temporary.write_text(text)
    os.replace(temporary, out / "results.md")
    print_table(summary)
    if comparison is not None:
        print(paired_markdown(comparison)[0])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m weakdeblur.report",
        description="Tables and plots from weakdeblur run or sweep folders (local files only).",
    )
    parser.add_argument(
        "paths", nargs="+", help="run folders, sweep folders, or folders above them"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: PATH/report for one path, else ./report)",
    )
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument(
        "--paired",
        nargs=2,
        metavar=("BASELINE", "CANDIDATE"),
        help="compare two methods (labels without seed=) on the same images and seeds",
    )
    parser.add_argument("--metric", default="psnr", help="the metric --paired compares")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        out = report(
            arguments.paths,
            arguments.out,
            figures=not arguments.no_figures,
            paired=tuple(arguments.paired) if arguments.paired else None,
            metric=arguments.metric,
        )
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
