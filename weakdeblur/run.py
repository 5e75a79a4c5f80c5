"""Hydra entry point: ``python -m weakdeblur.run [+exp=NAME] [overrides...]``.

This is the only module that reads the configuration tree. It composes the
pieces via ``_target_``, loops over the images of the data source, and hands
each to the solver, the evaluator and the trackers.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from weakdeblur.arbiter import DEFAULT_CRITERIA, Arbiter
from weakdeblur.batched import BatchedRuns
from weakdeblur.colour import MODES as COLOUR_MODES
from weakdeblur.colour import ColourView
from weakdeblur.data.sample import DataError
from weakdeblur.detection import panel_summary
from weakdeblur.evaluation import Evaluator
from weakdeblur.metrics import LPIPSMetric
from weakdeblur.runtime.locks import ImageLock, ImageLocked, LockHeartbeat
from weakdeblur.runtime.pipeline import ImagePipeline
from weakdeblur.runtime.portfolio import Arm, Portfolio, Pruning
from weakdeblur.runtime.preflight import (
    PreflightError,
    check_settings,
    compose_arms,
    run_hydra_main,
)
from weakdeblur.runtime.resume import (
    completed_record,
    discard_unused_run_folder,
    fingerprint,
    set_aside,
    sigterm_as_interrupt,
)
from weakdeblur.runtime.secrets import (
    config_secrets,
    environment_secrets,
    redact_overrides,
    scrub_folder,
)
from weakdeblur.runtime.tracking import (
    METRICS_FILE,
    LocalArtifacts,
    ProgressBar,
    Tracker,
    Trackers,
    environment_info,
    write_json,
)
from weakdeblur.solver import Solver, resolve_device
from weakdeblur.speed import resolve_threads, set_threads
from weakdeblur.types import error_cause

log = logging.getLogger("weakdeblur")

EXIT_USAGE = 2
EXIT_FAILED_IMAGES = 1
EXIT_INTERRUPTED = 130

FOLDER_NAME_LIMIT = 200  # bytes; file systems refuse names over 255


def path_safe(text: object, limit: int = FOLDER_NAME_LIMIT) -> str:
    """A sweep sub-folder name from a job's overrides (conf/config.yaml).

    A value holding a path (``data.root=/x/y``) must not nest folders: ``/`` becomes
    ``_``; the value of a secret-named key (``+notify.api_token=...``) becomes ``REDACTED``. A name longer than ``limit`` bytes keeps its beginning and ends with a hash
    of the whole text, so that jobs with many overrides still get distinct folders
    (each job's overrides are in its ``.hydra/overrides.yaml``)."""
    name = redact_overrides(str(text)).replace("/", "_").strip(".") or "_"
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    head = name.encode()[: limit - len(digest) - 1].decode(errors="ignore")
    return f"{head}~{digest}"


OmegaConf.register_new_resolver("path_safe", path_safe, replace=True)


def build_solver(cfg: DictConfig) -> Solver:
    """The solver from the ``generator``, ``loss``, ``optim``, ``stopping``, ``supervisor``,
    ``physics``, ``solver``, ``kernel_start`` and ``gate`` groups."""
    terms = [
        instantiate(term) for term in (cfg.loss.get("terms") or {}).values() if term is not None
    ]
    supervisor = instantiate(cfg.supervisor) if cfg.supervisor.get("_target_") else None
    return Solver(
        image_generator=instantiate(cfg.generator.image),
        kernel_generator=instantiate(cfg.generator.kernel),
        fidelity=instantiate(cfg.loss.fidelity),
        optim=instantiate(cfg.optim),
        inputs=instantiate(cfg.generator.inputs),
        stopping=instantiate(cfg.stopping),
        terms=terms,
        supervisor=supervisor,
        physics=instantiate(cfg.physics) if cfg.get("physics") else None,
        device=cfg.device,
        speed=instantiate(cfg.solver) if cfg.get("solver") else None,
        kernel_start=instantiate(cfg.kernel_start) if cfg.get("kernel_start") else None,
        gate=instantiate(cfg.gate) if cfg.get("gate") else None,
    )


def build_trackers(
    cfg: DictConfig, output_dir: Path, iterations: int, group: str | None = None
) -> Trackers:
    """Local artefacts, the lock's heartbeat, the configured logger (W&B, in ``group``:
    the experiment by default) and, last, the progress bar."""
    trackers: list[Tracker] = [LocalArtifacts(output_dir), LockHeartbeat(output_dir)]
    if cfg.logger.get("_target_"):
        extra: dict[str, Any] = {}
        if cfg.logger._target_.endswith("WandbTracker"):
            extra = {
                "group": group or cfg.experiment,
                "run_config": OmegaConf.to_container(cfg, resolve=True),
                "directory": output_dir,
                "tags": [*cfg.logger.get("tags", []), *choice_tags()],
            }
        trackers.append(instantiate(cfg.logger, _partial_=True)(**extra))
    # last, so that what the others print when an image starts comes before its bar
    trackers.append(ProgressBar(iterations, enabled=cfg.progress))
    return Trackers(trackers)


def choice_tags() -> list[str]:
    """W&B tags naming the data set, supervisor, stopping rule and preset, e.g. ``data:levin``."""
    if not HydraConfig.initialized():
        return []
    choices = HydraConfig.get().runtime.choices
    return [
        f"{group}:{choices[group]}"
        for group in ("exp", "data", "supervisor", "stopping")
        if choices.get(group)
    ]


def _mean(values: list[float]) -> float | None:
    finite = [value for value in values if isinstance(value, (int, float))]
    return statistics.fmean(finite) if finite else None


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    done = [record for record in records if record.get("status") == "ok"]
    keys = (
        "psnr",
        "ssim",
        "lpips",
        "kernel_error",
        "error_ratio",
        "blurry_psnr",
        "iterations",
        "seconds",
        "peak_psnr",
        "detection_gap",
        "iterations_saved",
    )
    means = {key: _mean([record[key] for record in done if key in record]) for key in keys}
    panel = panel_summary(records)
    return {
        **({"panel": panel} if panel else {}),
        "images": len(records),
        "ok": len(done),
        "failed": [record["name"] for record in records if record.get("status") == "failed"],
        "interrupted": [
            record["name"] for record in records if record.get("status") == "interrupted"
        ],
        "locked": [record["name"] for record in records if record.get("status") == "locked"],
        "mean": {key: value for key, value in means.items() if value is not None},
        "per_image": records,
    }


def print_summary(summary: dict[str, Any], output_dir: Path) -> None:
    lines = [
        f"{'image':<28} {'status':<8} {'PSNR':>7} {'SSIM':>7} {'blurry':>7} {'k err':>7} {'iters':>6} {'sec':>7}"
    ]

    def cell(record: dict[str, Any], key: str, fmt: str) -> str:
        value = record.get(key)
        if isinstance(value, (int, float)):
            return format(value, fmt)
        return "-".rjust(int(fmt.rstrip("dfe").split(".")[0]))  # a missing value keeps its column

    for record in summary["per_image"]:
        lines.append(
            f"{record['name']:<28} {record.get('status', '?'):<8} {cell(record, 'psnr', '7.2f')} "
            f"{cell(record, 'ssim', '7.4f')} {cell(record, 'blurry_psnr', '7.2f')} "
            f"{cell(record, 'kernel_error', '7.3f')} {cell(record, 'iterations', '6d')} {cell(record, 'seconds', '7.1f')}"
        )
    for record in summary["per_image"]:
        if "portfolio" in record:  # which candidate each image's result is
            lines.append(f"{record['name']:<28} chose {record['portfolio']['chosen']}")
    mean = summary["mean"]
    if "psnr" in mean:
        lines.append(f"{'mean':<28} {'':<8} {mean['psnr']:7.2f} {mean.get('ssim', 0):7.4f}")
    print("\n".join(lines))
    print(f"results: {output_dir}")


def hold_locks(names: list[str], output_dir: Path, records: list[dict[str, Any]]):
    """Yield each name while holding its image lock (:mod:`weakdeblur.runtime.locks`); an image
    locked by another live run is recorded ``locked`` and skipped."""
    for name in names:
        lock = ImageLock(output_dir / name)
        try:
            lock.acquire()
        except ImageLocked as error:
            log.error("%s: %s; skipped", name, error)
            records.append({"name": name, "status": "locked", "message": str(error)})
            continue
        try:
            yield name
        finally:
            lock.release()


def settle_locked(
    records: list[dict[str, Any]], output_dir: Path, config_fingerprint: str
) -> list[dict[str, Any]]:
    """Images skipped as locked that the other run has finished by now count as done."""
    settled = []
    for record in records:
        if record.get("status") == "locked":
            done = completed_record(output_dir / record["name"], config_fingerprint, quiet=True)
            if done is not None:
                record = {**done, "resumed": True}
        settled.append(record)
    return settled


def build_portfolio(cfg: DictConfig, output_dir: Path, pipeline: ImagePipeline) -> Portfolio:
    """The arms of ``cfg.portfolio`` (each composed and checked like a run of its own), its
    seeds and arbiter; ``pipeline`` gives the shared evaluator and the run's trackers."""
    hydra_config = HydraConfig.get()
    configs = compose_arms(cfg, list(hydra_config.overrides.task), hydra_config.job.config_name)
    arms = []
    for name, arm_cfg in configs.items():
        solver = build_solver(arm_cfg)
        trackers = build_trackers(arm_cfg, output_dir, solver.optim.iterations, cfg.experiment)
        supervisor = arm_cfg.supervisor
        arms.append(
            Arm(
                name,
                replace(pipeline, solver=solver, trackers=trackers, solve=None),
                fingerprint(OmegaConf.to_container(arm_cfg, resolve=True)),
                fingerprint({"supervisor": OmegaConf.to_container(supervisor, resolve=True)})
                if supervisor.get("_target_")
                else None,
            )
        )
    image_trackers = [t for t in pipeline.trackers.trackers if not isinstance(t, ProgressBar)]
    return Portfolio(
        arms,
        [cfg.seed + offset for offset in range(cfg.portfolio.seeds)],
        instantiate(cfg.arbiter, _convert_="all")
        if cfg.get("arbiter")
        else Arbiter(DEFAULT_CRITERIA),
        output_dir,
        Trackers(image_trackers),
        supervisor_candidate=cfg.portfolio.get("supervisor_candidate", False),
        resume=bool(cfg.get("resume")),
        pruning=(
            Pruning(list(cfg.portfolio.prune_at), cfg.portfolio.get("keep", 0.5))
            if cfg.portfolio.get("prune_at")
            else None
        ),
    )


def run_images(cfg: DictConfig, output_dir: Path) -> int:
    """Run every selected image; return the process exit code."""
    try:
        check_settings(cfg)
    except PreflightError as error:
        log.error("%s", error)
        return EXIT_USAGE
    seed_mode = cfg.get("seed_mode") or "seeded"
    color = cfg.get("color") or "grey"
    if color not in COLOUR_MODES:
        log.error("color must be one of %s; got %r", ", ".join(COLOUR_MODES), color)
        return EXIT_USAGE
    # data.grey: null follows the top-level color key (grey loads luminance, y/rgb load colour)
    follow_colour = "grey" in cfg.data and cfg.data.grey is None
    source = instantiate(cfg.data, **({"grey": color == "grey"} if follow_colour else {}))
    try:
        names = source.names()
    except DataError as error:
        log.error("%s", error)
        return EXIT_USAGE
    if not names:
        log.error("no images found for data=%s", cfg.data.get("_target_"))
        return EXIT_USAGE

    solver = build_solver(cfg)
    if seed_mode == "reference" and cfg.seed != 0:
        log.warning(
            "seed_mode=reference draws SelfDeblur's fixed start: seed=%s is ignored", cfg.seed
        )
    device = resolve_device(cfg.device)
    evaluator = Evaluator(
        cut=cfg.metrics.cut,
        max_shift=cfg.metrics.max_shift,
        lpips=LPIPSMetric(cfg.metrics.lpips),
        error_ratio=cfg.metrics.get("error_ratio", True),
    )
    evaluator.lpips.available  # noqa: B018 - its notice, if any, before the first progress bar
    config_fingerprint = fingerprint(OmegaConf.to_container(cfg, resolve=True))
    trackers = build_trackers(cfg, output_dir, solver.optim.iterations)
    environment = environment_info(device)
    records: list[dict[str, Any]] = []
    exit_code = 0
    current: str | None = None
    solve = solver.run
    # a batch-mate is solved with its group but written only on its own turn, under its lock
    if solver.speed.batch_size > 1:  # solver.batch_size=B: groups of B images of one size at once

        def load_for_batch(name: str):
            loaded = source.load(name)
            if solver.supervisor is not None:  # an image the supervisor refuses stays out
                solver.supervisor.prepare(loaded)
            view_sample = ColourView.of(loaded, color).solve
            return view_sample, evaluator.progress(view_sample)

        solve = BatchedRuns(
            solver,
            names,
            load_for_batch,
            skip=lambda name: (
                bool(cfg.get("resume"))
                and completed_record(output_dir / name, config_fingerprint, quiet=True) is not None
            ),
        ).run
    pipeline = ImagePipeline(
        solver, evaluator, trackers, color, seed_mode, environment, solve=solve
    )
    try:
        portfolio = build_portfolio(cfg, output_dir, pipeline) if cfg.get("portfolio") else None
    except PreflightError as error:
        log.error("%s", error)
        return EXIT_USAGE
    images = hold_locks(names, output_dir, records)
    try:
        for name in images:
            current = name
            done = (
                completed_record(output_dir / name, config_fingerprint)
                if cfg.get("resume")
                else None
            )
            if done is not None:
                log.info("%s: complete in %s, skipped (resume=false redoes it)", name, output_dir)
                records.append({**done, "resumed": True})
                continue
            set_aside(output_dir / name)  # a finished result being redone is moved, never lost
            record: dict[str, Any] = {
                "name": name,
                "experiment": cfg.experiment,
                "seed": cfg.seed,
                "seed_mode": seed_mode,
                "config_fingerprint": config_fingerprint,
            }
            try:
                sample = source.load(name)
                if solver.supervisor is not None:  # oracles refuse images without ground truth
                    solver.supervisor.prepare(sample)
            except DataError as error:  # its message may name the image already
                log.error("%s", error if str(error).startswith(f"{name}:") else f"{name}: {error}")
                record.update(status="failed", message=str(error))
                records.append(record)
                folder = output_dir / name
                folder.mkdir(parents=True, exist_ok=True)
                write_json(folder / METRICS_FILE, record)
                continue
            if portfolio is not None:
                record = portfolio.run(sample, record)
            else:
                record, _ = pipeline.run(sample, cfg.seed, record)
            records.append(record)
        current = None
    except KeyboardInterrupt:
        kept = "finished images and candidates" if portfolio is not None else "finished images"
        log.error(
            "interrupted during %s; %s are kept: rerun the same command to resume", current, kept
        )
        if current is not None and all(record["name"] != current for record in records):
            record = {
                "name": current,
                "status": "interrupted",
                "message": "interrupted before the image finished",
            }
            folder = output_dir / current
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / METRICS_FILE, record)
            records.append(record)
        exit_code = EXIT_INTERRUPTED
    finally:
        images.close()  # releases the lock of an unfinished image
        trackers.close()
        if portfolio is not None:
            portfolio.close()
        summary = summarise(settle_locked(records, output_dir, config_fingerprint))
        write_json(output_dir / "summary.json", summary)
    print_summary(summary, output_dir)
    if exit_code == 0 and summary["failed"]:
        log.error("%d image(s) failed: %s", len(summary["failed"]), ", ".join(summary["failed"]))
        exit_code = EXIT_FAILED_IMAGES
    if exit_code == 0 and summary["locked"]:
        log.error(
            "%d image(s) skipped, locked by another run: %s (re-run when it ends)",
            len(summary["locked"]),
            ", ".join(summary["locked"]),
        )
        exit_code = EXIT_FAILED_IMAGES
    return exit_code


def _user_error(error: BaseException) -> BaseException | None:
    """The user-caused error (bad data, supervisor or loss settings) behind ``error``, if any."""
    from weakdeblur.losses import LossConfigError

    return error_cause(error, (DataError, LossConfigError))


def hydra_config_launcher_jobs() -> int:
    """``n_jobs`` of the Hydra launcher (joblib), 1 for the basic launcher."""
    if not HydraConfig.initialized():
        return 1
    jobs = HydraConfig.get().launcher.get("n_jobs", 1)
    return int(jobs) if isinstance(jobs, int) and jobs > 0 else 1


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    # auto: the cores free when the run starts, shared by the launcher's workers (logged once)
    threads = resolve_threads(cfg.threads, hydra_config_launcher_jobs())
    if threads is not None:
        set_threads(threads)
    hydra_config = HydraConfig.get()
    output_dir = Path(hydra_config.runtime.output_dir)
    # Hydra saved the overrides verbatim under .hydra/: take any secret out of them
    secrets = environment_secrets() | config_secrets(OmegaConf.to_container(cfg))
    if hydra_config.output_subdir is not None:
        scrub_folder(output_dir / hydra_config.output_subdir, secrets)
    if hydra_config.mode == RunMode.MULTIRUN:  # the sweep's multirun.yaml
        scrub_folder(Path(hydra_config.sweep.dir), secrets)
    try:
        with sigterm_as_interrupt():
            code = run_images(cfg, output_dir)
    except Exception as error:  # Hydra wraps constructor errors; report the user's one plainly
        cause = _user_error(error)
        if cause is None:
            raise
        log.error("%s", cause)
        code = EXIT_USAGE
    if code == EXIT_USAGE:  # ended before its first image: leave no empty run folder behind
        discard_unused_run_folder(output_dir, hydra_config.output_subdir)
    if code == EXIT_FAILED_IMAGES and hydra_config.mode == RunMode.MULTIRUN:
        # an exception (not SystemExit) lets the launcher finish the other jobs;
        # Hydra reports it and exits non-zero at the end of the sweep
        raise RuntimeError(f"some images failed in {output_dir} (see its summary.json)")
    if code:
        sys.exit(code)


if __name__ == "__main__":
    run_hydra_main(main, Path(__file__).resolve().parents[1] / "conf", "config")
