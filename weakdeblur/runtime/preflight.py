"""Checks made before Hydra creates the run folder, so a user error creates nothing.

Hydra makes ``hydra.run.dir`` (with ``.hydra/`` and ``run.log``) before it
calls the task function, so an error found there still leaves a folder
behind. :class:`Preflight` is a Hydra callback (``hydra.callbacks.preflight``
in ``conf/config.yaml``): its ``on_run_start`` runs after composition and
before the folder exists, and checks, in this order,

1. the types of the settings in :class:`Settings` (``seed=abc`` → one line);
2. that the output folder can be created and written;
3. that the data source exists and ``data.images`` names only images it has.

A failure prints one line (``weakdeblur: error: ...``) on stderr and exits
with status 2; nothing is created. In a sweep (``-m``) Hydra does not call
``on_run_start``; :func:`check_settings` and the data check in
``run_images`` still run in each job (the job folder then exists).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

EXIT_USAGE = 2


class PreflightError(Exception):
    """A user error found before any work: one line, exit 2."""


@dataclass
class MetricsSettings:
    cut: int = 15
    max_shift: float = 10
    lpips: bool = True
    error_ratio: bool = True


@dataclass
class OptimTypes:
    iterations: int = 1000
    lr_image: float = 1e-2
    lr_kernel: float = 1e-4
    milestones: list[float] = field(default_factory=list)
    gamma: float = 0.5
    log_every: int = 50
    snapshot_every: int = 250


class SeedModeName(Enum):
    """The values of ``seed_mode`` (:data:`weakdeblur.seeding.SEED_MODES`)."""

    seeded = "seeded"
    reference = "reference"


@dataclass
class Settings:
    """The types of the top-level settings and of ``metrics`` and ``optim`` (the keys most
    often overridden); the other groups are checked by their constructors."""

    experiment: str = "default"
    seed: int = 0
    seed_mode: SeedModeName = SeedModeName.seeded
    color: str = "grey"
    device: str = "auto"
    threads: Any = "auto"  # auto | null | N, checked by check_settings
    progress: bool = True
    resume: bool = True
    run_name: str = ""
    data_root: str = "data"
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    optim: OptimTypes = field(default_factory=OptimTypes)


def _checked_part(cfg: DictConfig) -> dict[str, Any]:
    """The keys of ``cfg`` that :class:`Settings` types (unknown keys are Hydra's business)."""
    part: dict[str, Any] = {}
    for name, kind in (("metrics", MetricsSettings), ("optim", OptimTypes), (None, Settings)):
        node = cfg if name is None else cfg.get(name)
        if not isinstance(node, DictConfig):
            continue
        fields = set(kind.__dataclass_fields__) - {"metrics", "optim"}
        values = {key: node[key] for key in fields if key in node}
        if name is None:
            part.update(values)
        else:
            part[name] = values
    return part


def check_settings(cfg: DictConfig) -> None:
    """Raise :class:`PreflightError` naming the key whose value has the wrong type, or the
    group (``gate``, ``kernel_start``) whose supervisor cannot serve it."""
    from weakdeblur.speed import check_threads

    try:
        check_threads(cfg.get("threads"))
    except ValueError as error:
        raise PreflightError(str(error)) from error
    check_kernel_supervisor(cfg)
    check_reference_generators(cfg)
    try:
        OmegaConf.merge(OmegaConf.structured(Settings), _checked_part(cfg))
    except OmegaConfBaseException as error:
        first = str(error).splitlines()[0]
        key = getattr(error, "full_key", None)
        raise PreflightError(f"{key}: {first}" if key else first) from error


def check_kernel_supervisor(cfg: DictConfig) -> None:
    """``gate`` and ``kernel_start`` read the supervisor's kernel estimate k̄: the supervisor
    must be one that estimates a kernel (it overrides ``Supervisor.kernel_estimate``)."""
    users = [group for group in ("gate", "kernel_start") if cfg.get(group)]
    if not users:
        return
    from hydra.utils import get_class

    from weakdeblur.supervisors.base import Supervisor

    supervisor = cfg.get("supervisor") or {}
    target = supervisor.get("_target_") if isinstance(supervisor, DictConfig) else None
    kind = get_class(target) if target else None
    if kind is None or kind.kernel_estimate is Supervisor.kernel_estimate:
        name = target.rsplit(".", 1)[-1] if target else "none"
        raise PreflightError(
            f"{' and '.join(users)} {'needs' if len(users) == 1 else 'need'} a supervisor "
            "that estimates the blur kernel "
            f"(supervisor=map); supervisor is {name}"
        )


def check_reference_generators(cfg: DictConfig) -> None:
    """``seed_mode=reference`` re-draws the generators' weights in the reference script's
    order: both generators must say what that order is (``reference_init_order``, SelfDeblur's
    ``SkipNetwork`` and ``KernelMLP``), and images run one at a time."""
    if cfg.get("seed_mode") != "reference":
        return
    from hydra.utils import get_class

    generator = cfg.get("generator") or {}
    for part in ("image", "kernel"):
        target = (generator.get(part) or {}).get("_target_")
        if target and not hasattr(get_class(target), "reference_init_order"):
            raise PreflightError(
                f"seed_mode=reference needs SelfDeblur's generators (SkipNetwork, KernelMLP); "
                f"generator.{part} is {target.rsplit('.', 1)[-1]} (use seed_mode=seeded)"
            )
    solver = cfg.get("solver") or {}
    if (solver.get("batch_size") or 1) > 1:
        raise PreflightError(
            "seed_mode=reference runs one image at a time; set solver.batch_size=1"
        )


def check_output_folder(folder: str | os.PathLike) -> None:
    """Raise :class:`PreflightError` unless ``folder`` exists and is writable, or can be created.

    The deepest existing ancestor is probed with a temporary file (removed at
    once), so a read-only mount is found even when running as root.
    """
    folder = Path(folder).expanduser().absolute()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(
            f"output folder {folder} cannot be created: {existing} is not a folder"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise PreflightError(
            f"output folder {folder} is not writable: {error.strerror} ({existing})"
        ) from error


def check_data(cfg: DictConfig) -> None:
    """Raise :class:`PreflightError` when the data source is missing or ``data.images``
    names images it does not have (the message lists what exists)."""
    from hydra.utils import instantiate

    from weakdeblur.data.sample import DataError

    try:
        instantiate(cfg.data).names()
    except DataError as error:
        raise PreflightError(str(error)) from error


def fail(message: str) -> None:
    print(f"weakdeblur: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


class Preflight(Callback):
    """Hydra callback: the checks above before the run folder is created (single runs)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_settings(config)
            check_output_folder(config.hydra.run.dir)
            check_data(config)
        except PreflightError as error:
            fail(str(error))
