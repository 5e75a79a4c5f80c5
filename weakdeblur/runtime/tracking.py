"""Trackers: where results go (local files, W&B, the terminal), behind one interface.

The runner calls ``start_image`` → ``log`` (every logging step) →
``end_image`` for each image, and ``close`` once. Local artefacts are always
written, whatever else is enabled.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from weakdeblur.data.io import kernel_to_image, write_image
from weakdeblur.data.sample import Sample
from weakdeblur.losses import ConsistencyLoss, WeakLoss
from weakdeblur.types import LogRecord, Result

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"

# ---- the keys the W&B tracker logs (weakdeblur.dashboard builds its panels from these) ----
STEP_METRIC = "iteration"  # the x axis of every curve (``define_metric``)
# scalars of every logging step, logged as they come from ``weakdeblur.solver.log_record``: the
# objective (``loss``), each loss term by name, the scores of x when there is ground truth
CURVE_SCORES = ("psnr", "ssim")
CURVE_LOSSES = ("loss", "fidelity", WeakLoss.name, ConsistencyLoss.name)
# the run summary holds every scalar of the image's metrics.json; the columns worth a table
# (lpips only with the AlexNet backbone file; kernel_error and error_ratio with a true kernel)
STOP_COLUMNS = ("stop_iteration", "returned_iteration")  # where a run stopped, what it returned
SUMMARY_COLUMNS = (
    "psnr",
    "ssim",
    "lpips",
    "kernel_error",
    "error_ratio",
    "iterations",
    *STOP_COLUMNS,
    "seconds",
)
SNAPSHOT_IMAGES = ("x", "k")  # logged under these keys at snapshot steps
# logged once, at the last step, as ``final/<name>``; x_bar/k_bar only with a supervisor that
# gives them, x_true/k_true only with ground truth
FINAL_IMAGES = ("y", "x", "k", "y_hat", "x_bar", "k_bar", "x_true", "k_true")


def final_image_key(name: str) -> str:
    """The W&B key of a final image: ``final/x``, ``final/k_bar``, ..."""
    if name not in FINAL_IMAGES:
        raise KeyError(f"unknown final image {name!r}; known: {', '.join(FINAL_IMAGES)}")
    return f"final/{name}"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary name (unique to the process), flushed to disk,
    then renamed, so a reader or a crash never sees half a file."""
    text = json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (torch.Tensor,)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def environment_info(device: torch.device | str) -> dict[str, Any]:
    """Package versions and the device, recorded with every result."""
    import hydra
    import kornia
    import numpy
    import piq

    import weakdeblur

    info: dict[str, Any] = {
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "kornia": kornia.__version__,
        "piq": piq.__version__,
        "hydra": hydra.__version__,
        "weakdeblur": weakdeblur.__version__,
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


class Tracker:
    """Interface; every method is optional."""

    def start_image(self, sample: Sample, info: Mapping[str, Any]) -> None: ...

    def log(self, sample: Sample, record: LogRecord) -> None: ...

    def end_image(self, sample: Sample, result: Result, metrics: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullTracker(Tracker):
    """``logger=none``."""


class Trackers(Tracker):
    """Fans every call out to several trackers."""

    def __init__(self, trackers: Sequence[Tracker]):
        self.trackers = list(trackers)

    def start_image(self, sample, info):
        for tracker in self.trackers:
            tracker.start_image(sample, info)

    def log(self, sample, record):
        for tracker in self.trackers:
            tracker.log(sample, record)

    def end_image(self, sample, result, metrics):
        for tracker in self.trackers:
            tracker.end_image(sample, result, metrics)

    def close(self):
        for tracker in self.trackers:
            tracker.close()


class LocalArtifacts(Tracker):
    """Per image, under ``<output_dir>/<name>/``: ``x.png``, ``k.png`` (scaled to its
    maximum), ``y_hat.png``, ``blurry.png``, ``sharp.png`` and ``k_true.png`` (ground
    truth, when known), ``metrics.json``, ``history.csv`` and ``history.json``
    (rewritten at every logging step, so a long run can be followed and an
    interrupted one keeps its history); intermediate ``x.png``/``k.png`` at snapshot steps."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self.rows: list[Mapping[str, float]] = []

    def folder(self, name: str) -> Path:
        folder = self.output_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def start_image(self, sample, info):
        folder = self.folder(sample.name)
        write_image(folder / "blurry.png", sample.blurry)
        if sample.sharp is not None:
            write_image(folder / "sharp.png", sample.sharp)
        if sample.kernel is not None:
            write_image(folder / "k_true.png", kernel_to_image(sample.kernel))
        write_json(folder / METRICS_FILE, {"name": sample.name, "status": "running", **info})
        self.rows = []

    def log(self, sample, record):
        folder = self.folder(sample.name)
        self.rows.append(record.scalars)
        write_history(folder, self.rows)
        if record.snapshot:
            write_image(folder / "x.png", record.image)
            write_image(folder / "k.png", kernel_to_image(record.kernel))

    def end_image(self, sample, result, metrics):
        folder = self.folder(sample.name)
        write_image(folder / "x.png", result.image)
        write_image(folder / "k.png", kernel_to_image(result.kernel))
        write_image(folder / "y_hat.png", result.blurred)
        if result.supervised is not None:
            write_image(folder / "x_bar.png", result.supervised)
        if result.supervised_kernel is not None:
            write_image(folder / "k_bar.png", kernel_to_image(result.supervised_kernel))
        temporary = folder / f".k.pt.{os.getpid()}.tmp"
        torch.save(result.kernel.cpu(), temporary)
        os.replace(temporary, folder / "k.pt")
        write_history(folder, result.history)
        write_json(folder / METRICS_FILE, dict(metrics))


def write_history(folder: Path, history: Sequence[Mapping[str, float]]) -> None:
    write_json(folder / "history.json", list(history))
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    temporary = folder / f".history.csv.{os.getpid()}.tmp"
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    os.replace(temporary, folder / "history.csv")


class ProgressBar(Tracker):
    """A tqdm bar per image showing iteration, loss and PSNR (when ground truth exists)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total = total
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.position = 0

    def start_image(self, sample, info):
        if self.enabled:
            self.bar = tqdm(
                total=self.total, desc=sample.name, unit="it", dynamic_ncols=True, leave=True
            )
            self.position = 0

    def log(self, sample, record):
        if self.bar is None:
            return
        self.bar.update(record.iteration - self.position)
        self.position = record.iteration
        postfix = {"loss": f"{record.scalars['loss']:.4g}"}
        if "psnr" in record.scalars:
            postfix["psnr"] = f"{record.scalars['psnr']:.2f}"
        self.bar.set_postfix(postfix)

    def end_image(self, sample, result, metrics):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _to_numpy(image: torch.Tensor):
    """``(1, C, H, W)`` in [0, 1] → ``(H, W, C)`` array for ``wandb.Image``."""
    return image[0].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_mode(requested: str | None) -> str:
    """``WANDB_MODE`` wins; else the requested mode; else online with an API key, offline without."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested:
        return requested
    return "online" if _has_wandb_key() else "offline"


CANDIDATE_COLUMNS = ["candidate", "arm", "seed", "chosen", "total", "psnr", "iterations", "seconds"]


def candidate_table(portfolio: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A portfolio's candidates side by side (the ``portfolio`` block of an image's
    ``metrics.json``): :data:`CANDIDATE_COLUMNS`, the iteration a pruned one stopped at, then
    every criterion's score; one row per candidate."""
    candidates = portfolio.get("candidates", [])
    criteria = sorted({name for c in candidates for name in c.get("scores", {})})
    columns = [*CANDIDATE_COLUMNS, "pruned_at", *criteria]
    rows = [
        [
            c.get("name"),
            c.get("arm"),
            c.get("seed"),
            c.get("name") == portfolio.get("chosen"),
            c.get("total"),
            c.get("psnr"),
            c.get("iterations"),
            c.get("seconds"),
            c.get("pruned_at"),
            *(c.get("scores", {}).get(name) for name in criteria),
        ]
        for c in candidates
    ]
    return columns, rows


class WandbTracker(Tracker):
    """One W&B run per image, grouped by experiment.

    ``group`` = experiment and ``job_type`` = image, so the W&B runs table
    groups an ablation by experiment (mean ± spread over the images) and a
    ``job_type`` filter compares experiments on one image. The step metric is
    ``iteration``. The summary holds every scalar of the image's
    ``metrics.json`` (scores of the returned estimate, ``stop_*`` scores at
    the iteration where the run stopped, ``peak_*``, kernel error, error
    ratio, iterations, seconds); the last step logs images of y, x, k, ŷ,
    x̄ and k̄ (with a supervisor that gives them) and the ground truth x and k (when known),
    under ``final/<name>`` (:data:`FINAL_IMAGES`). A portfolio's image also logs its
    candidates side by side, a table ``portfolio/candidates`` (:func:`candidate_table`), and
    ``portfolio/chosen`` and ``portfolio/reason`` in the summary. Every run is
    finished, whatever happens, so multirun never merges runs.

    Args:
        project, entity: W&B destination.
        mode: ``online``/``offline``/``disabled``; ``None`` = automatic (see :func:`wandb_mode`).
        group: usually the experiment name; ``job_type`` is the image name.
        tags: extra tags (data set, supervisor, ...).
        log_images: log x and k images at snapshot steps and the final images when true.
        run_config: the resolved run configuration (a plain dict).
        directory: where W&B writes its files (the run's output folder).
        init_timeout: seconds ``wandb.init`` may take (W&B's default: 90).
        init_retries: retries of W&B's server requests at start (``None``: W&B's default).
        quiet: no terminal output from W&B itself (``wandb.Settings(quiet=True, silent=True)``:
            no banner, history or summary per image), one line of ours per process saying
            where the runs are written; ``False`` shows W&B's own output.

    If an online ``wandb.init`` fails (server unreachable, bad key), one warning is
    logged and this and every later image are logged offline (``wandb sync`` uploads
    them later). API keys and other secrets are removed from the logged config
    (:mod:`weakdeblur.runtime.secrets`).
    """

    _said_where = False  # the one line of ours that replaces W&B's own (quiet)

    def __init__(
        self,
        project: str = "weakdeblur",
        entity: str | None = None,
        mode: str | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
        log_images: bool = True,
        run_config: Mapping[str, Any] | None = None,
        directory: str | Path | None = None,
        init_timeout: float | None = None,
        init_retries: int | None = None,
        quiet: bool = True,
    ):
        from weakdeblur.runtime.secrets import config_secrets, environment_secrets, scrub

        self.project, self.entity = project, entity
        self.mode = wandb_mode(mode)
        self.group, self.tags = group, list(tags)
        self.log_images = log_images
        self.secrets = environment_secrets() | config_secrets(dict(run_config or {}))
        self.run_config = scrub(dict(run_config or {}), self.secrets)
        self.init_timeout, self.init_retries = init_timeout, init_retries
        self.quiet = quiet
        self.directory = Path(directory) if directory else None
        self.run = None

    def start_image(self, sample, info):
        import wandb

        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.run = self._init(wandb, sample, info)
        except Exception as error:  # wandb raises CommError, UsageError, TimeoutError, ...
            if self.mode != "online":
                raise
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            log.warning(
                "W&B online start failed (%s); logging offline from now on "
                "(upload later with `wandb sync %s`)",
                reason,
                self.directory / "wandb" if self.directory else "wandb",
            )
            self.mode = "offline"
            self.run = self._init(wandb, sample, info)
        self.run.define_metric(STEP_METRIC)
        self.run.define_metric("*", step_metric=STEP_METRIC)

    def _init(self, wandb: Any, sample: Sample, info: Mapping[str, Any]) -> Any:
        from weakdeblur.runtime.secrets import argv_scrubbed

        # quiet: W&B says nothing (its own lines would break the progress bar); one line of
        # ours says where the runs go, once per process
        settings: dict[str, Any] = {"quiet": bool(self.quiet), "silent": bool(self.quiet)}
        if self.quiet and not WandbTracker._said_where:
            WandbTracker._said_where = True
            where = self.directory / "wandb" if self.directory else "./wandb"
            log.info(
                "W&B %s: runs in %s%s",
                self.mode,
                where,
                " (upload later with `wandb sync`)" if self.mode == "offline" else "",
            )
        if self.init_timeout is not None:
            settings["init_timeout"] = float(self.init_timeout)
        if self.init_retries is not None:
            settings["x_graphql_retry_max"] = int(self.init_retries)
        with argv_scrubbed(self.secrets):  # W&B records the command line
            return wandb.init(
                project=self.project,
                entity=self.entity,
                mode=self.mode,
                group=self.group,
                job_type=sample.name,
                name=f"{self.group}/{sample.name}" if self.group else sample.name,
                tags=self.tags,
                config={
                    **self.run_config,
                    "image": sample.name,
                    **{f"env/{k}": v for k, v in info.items()},
                },
                dir=str(self.directory) if self.directory else None,
                reinit="finish_previous",
                settings=wandb.Settings(**settings),
            )

    def log(self, sample, record):
        if self.run is None:
            return
        import wandb

        data = dict(record.scalars)
        if self.log_images and record.snapshot:
            x, k = SNAPSHOT_IMAGES
            data[x] = wandb.Image(_to_numpy(record.image))
            data[k] = wandb.Image(_to_numpy(kernel_to_image(record.kernel)))
        self.run.log(data)

    def end_image(self, sample, result, metrics):
        if self.run is None:
            return
        import wandb

        try:
            if self.log_images:
                images = {
                    "y": sample.blurry,
                    "x": result.image,
                    "k": kernel_to_image(result.kernel),
                    "y_hat": result.blurred,
                }
                if result.supervised is not None:
                    images["x_bar"] = result.supervised
                if result.supervised_kernel is not None:
                    images["k_bar"] = kernel_to_image(result.supervised_kernel)
                if sample.sharp is not None:
                    images["x_true"] = sample.sharp
                if sample.kernel is not None:
                    images["k_true"] = kernel_to_image(sample.kernel)
                data: dict[str, Any] = {STEP_METRIC: result.iterations}
                for name, value in images.items():
                    key = final_image_key(name)
                    data[key] = wandb.Image(_to_numpy(value), caption=f"{sample.name} {key}")
                self.run.log(data)
            portfolio = metrics.get("portfolio")
            if isinstance(portfolio, Mapping):
                columns, rows = candidate_table(portfolio)
                table = wandb.Table(columns=columns, data=rows)
                self.run.log({STEP_METRIC: result.iterations, "portfolio/candidates": table})
                self.run.summary.update(
                    {f"portfolio/{key}": portfolio.get(key) for key in ("chosen", "reason")}
                )
            self.run.summary.update(
                {
                    key: value
                    for key, value in metrics.items()
                    if isinstance(value, (int, float, str, bool))
                }
            )
        finally:
            self.run.finish(exit_code=0 if result.status == "ok" else 1)
            self.run = None

    def close(self):
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None
