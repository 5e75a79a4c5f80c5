"""How good is g? ``python -m weakdeblur.evaluate_supervisor supervisor=NAME data=NAME``.

For every image of the data source: the Levin-protocol PSNR/SSIM of the blurry
input y and of the supervisor's estimate x̄ = g(y), their difference, the
kernel error and error ratio of k̄ where the supervisor estimates a kernel
(``kernel_estimate``) and the ground truth has one, and the seconds g took.
The table is written as ``results.md`` / ``results.csv`` (one row per image,
rewritten after each image, so an interrupted run keeps what it measured)
and ``summary.json`` (means) in ``out``, next to ``config.yaml`` (the resolved
configuration: which supervisor, weights and data made the tables).
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from weakdeblur.data.io import kernel_to_image, write_image
from weakdeblur.data.sample import DataError
from weakdeblur.evaluation import Evaluator
from weakdeblur.metrics import LPIPSMetric, kernel_error
from weakdeblur.runtime.preflight import PreflightError, check_output_folder, check_required
from weakdeblur.runtime.resume import discard_unused_run_folder
from weakdeblur.runtime.tracking import write_json
from weakdeblur.solver import resolve_device
from weakdeblur.speed import set_threads
from weakdeblur.supervisors.errors import SupervisorError
from weakdeblur.types import error_cause

log = logging.getLogger("weakdeblur")

COLUMNS = (
    "image",
    "blurry_psnr",
    "blurry_ssim",
    "xbar_psnr",
    "xbar_ssim",
    "gain_db",
    "kernel_error",
    "error_ratio",
    "seconds",
)


def evaluate(
    source, supervisor, evaluator: Evaluator, out: Path, device, with_error_ratio: bool
) -> list[dict]:
    """Score g on every image of ``source``; rewrite the tables after each image."""
    rows: list[dict] = []
    for name in source.names():
        sample = source.load(name)
        started = time.perf_counter()
        supervisor.to(device)
        supervisor.prepare(sample)
        with torch.no_grad():
            estimate = supervisor(sample.blurry.to(device)).float().cpu()
        seconds = time.perf_counter() - started
        row: dict = {"image": name, "seconds": seconds}
        if sample.sharp is not None:
            sharp = sample.sharp.float()
            blurry = evaluator.image_scores(sample.blurry.float(), sharp, with_lpips=False)
            restored = evaluator.image_scores(estimate, sharp, with_lpips=False)
            row.update(
                blurry_psnr=blurry["psnr"],
                blurry_ssim=blurry["ssim"],
                xbar_psnr=restored["psnr"],
                xbar_ssim=restored["ssim"],
                gain_db=restored["psnr"] - blurry["psnr"],
            )
        kernel = supervisor.kernel_estimate(sample)
        if kernel is not None:
            kernel = kernel.float().cpu()
            (out / "kernels").mkdir(parents=True, exist_ok=True)
            write_image(out / "kernels" / f"{name}.png", kernel_to_image(kernel))
            if sample.kernel is not None and sample.kernel.ndim == 4:
                row["kernel_error"] = kernel_error(kernel, sample.kernel)
                if with_error_ratio and sample.sharp is not None:
                    row["error_ratio"] = evaluator.error_ratio(sample, kernel)
        rows.append(row)
        log.info(
            "%s: %s",
            name,
            ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)),
        )
        write_tables(rows, out)
    return rows


def summary(rows: list[dict]) -> dict[str, float]:
    means = {}
    for column in COLUMNS[1:]:
        values = [
            row[column]
            for row in rows
            if isinstance(row.get(column), float) and math.isfinite(row[column])
        ]
        if values:
            means[column] = statistics.fmean(values)
    return {"images": len(rows), **means}


def markdown(rows: list[dict]) -> str:
    present = [c for c in COLUMNS if any(c in row for row in rows)]

    def cell(value) -> str:
        return (
            f"{value:.3f}" if isinstance(value, float) else str(value if value is not None else "")
        )

    lines = ["| " + " | ".join(present) + " |", "|" + " --- |" * len(present)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in present) + " |" for row in rows]
    means = summary(rows)
    lines.append("| **mean** | " + " | ".join(cell(means.get(c)) for c in present[1:]) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    present = [c for c in COLUMNS if any(c in row for row in rows)]
    temporary = out / "results.csv.tmp"
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=present)
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in present} for row in rows)
    temporary.replace(out / "results.csv")
    (out / "results.md").write_text(markdown(rows))
    write_json(out / "summary.json", summary(rows))


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate_supervisor")
def main(cfg: DictConfig) -> None:
    try:
        if not cfg.supervisor.get("_target_"):
            raise PreflightError(
                "evaluate_supervisor needs a supervisor (supervisor=map|synthetic|identity|...)"
            )
        check_required(cfg)
    except PreflightError as error:
        log.error("%s", error)
        discard_unused_run_folder(Path(cfg.out), None)  # made by Hydra, still empty
        sys.exit(2)
    if cfg.get("threads"):
        set_threads(int(cfg.threads))
    color = cfg.get("color") or "grey"
    follow_colour = "grey" in cfg.data and cfg.data.grey is None
    out = Path(cfg.out)
    if (out / "results.csv").exists():  # a new folder per run: never overwrite earlier tables
        log.error("%s already holds results (results.csv): choose another out= or move it", out)
        sys.exit(2)
    try:
        check_output_folder(out)
    except PreflightError as error:
        log.error("%s", error)
        sys.exit(2)
    out.mkdir(parents=True, exist_ok=True)
    # which g (weights, settings) and which data made these tables
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    try:
        source = instantiate(cfg.data, **({"grey": color == "grey"} if follow_colour else {}))
        supervisor = instantiate(cfg.supervisor)
        evaluator = Evaluator(
            cfg.metrics.cut, cfg.metrics.max_shift, lpips=LPIPSMetric(enabled=False)
        )
        rows = evaluate(
            source, supervisor, evaluator, out, resolve_device(cfg.device), cfg.metrics.error_ratio
        )
    except Exception as error:  # Hydra wraps the errors of the classes it instantiates
        cause = error_cause(error, (DataError, SupervisorError))
        if cause is None:
            raise
        log.error("%s", cause)  # the asked-for config.yaml stays, to see what was asked
        sys.exit(2)
    print(markdown(rows), end="")
    log.info("tables written to %s", out)


if __name__ == "__main__":
    from weakdeblur.runtime.preflight import run_hydra_main

    run_hydra_main(main, Path(__file__).resolve().parents[1] / "conf", "evaluate_supervisor")
