"""Checks made before Hydra creates the run folder, so a user error creates nothing.

Hydra makes ``hydra.run.dir`` (with ``.hydra/`` and ``run.log``) before it
calls the task function, so an error found there still leaves a folder
behind. :class:`Preflight` is a Hydra callback (``hydra.callbacks.preflight``
in ``conf/config.yaml``): its ``on_run_start`` runs after composition and
before the folder exists, and checks, in this order,

1. the types of the settings in :class:`Settings` (``seed=abc`` → one line), the values that
   no run can use (:data:`VALUE_RULES`: ``optim.iterations=0``, ``data.kernel_size=-3``,
   a negative λ, ...) and keys that no constructor takes (``+optim.iteration=60``);
2. that the output folder can be created and written;
3. that the data source exists and ``data.images`` names only images it has (a single image
   file must be readable).

A failure prints one line (``weakdeblur: error: ...``) on stderr and exits
with status 2; nothing is created. In a sweep (``-m``) Hydra does not call
``on_run_start``; :func:`check_settings` and the data check in
``run_images`` still run in each job (the job folder then exists).
"""

from __future__ import annotations

import inspect
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from weakdeblur.speed import COMPILE_MODES

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

    check_required(cfg)
    try:
        check_threads(cfg.get("threads"))
    except ValueError as error:
        raise PreflightError(str(error)) from error
    check_device(cfg.get("device"))
    check_kernel_supervisor(cfg)
    check_reference_generators(cfg)
    try:
        OmegaConf.merge(OmegaConf.structured(Settings), _checked_part(cfg))
    except OmegaConfBaseException as error:
        first = str(error).splitlines()[0]
        key = getattr(error, "full_key", None)
        raise PreflightError(f"{key}: {first}" if key else first) from error
    check_values(cfg)
    check_unknown_keys(cfg)
    check_portfolio(cfg)


# -- values that must be given, devices that must exist ------------------------------------------

REQUIRED_HINTS = {
    "data.path": "the blurry image file",
    "supervisor.checkpoint": "the network's weights file; docs/supervisors.md",
}


def check_required(cfg: DictConfig) -> None:
    """Raise :class:`PreflightError` for the first mandatory value (``???``) left unset, e.g.
    ``data=image`` without ``data.path`` or ``supervisor=nafnet`` without a checkpoint."""
    missing = sorted(_missing_keys(cfg))
    if missing:
        key = missing[0]
        hint = f" ({REQUIRED_HINTS[key]})" if key in REQUIRED_HINTS else ""
        raise PreflightError(f"{key} is required: add {key}=VALUE{hint}")


def check_device(value: Any) -> None:
    """``device`` is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or another torch device that
    exists on this machine."""
    import torch

    if value is None or str(value) == "auto":
        return
    try:
        device = torch.device(str(value))
    except RuntimeError as error:
        raise PreflightError(f"device must be auto, cpu, cuda or cuda:N; got {value!r}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PreflightError(
                f"device={value}: no CUDA device is available here (use device=auto or cpu)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PreflightError(
                f"device={value}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise PreflightError(f"device={value}: MPS is not available here (use device=auto)")


# -- values no run can use ------------------------------------------------------------------


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


Rule = tuple[str, Callable[[Any], bool], str]

# (key pattern, test, what a valid value is). ``*`` matches one key or list index; a rule
# applies wherever its pattern matches (a preset's panel members, a folder's per-image sizes).
VALUE_RULES: list[Rule] = [
    ("optim.iterations", lambda v: _whole(v, 1) and v <= 10**7, "a whole number in [1, 10^7]"),
    ("optim.log_every", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("optim.snapshot_every", lambda v: _whole(v, 0), "a whole number >= 0 (0: no snapshots)"),
    ("optim.lr_image", lambda v: _number(v) and v > 0, "a number > 0"),
    ("optim.lr_kernel", lambda v: _number(v) and v > 0, "a number > 0"),
    ("optim.gamma", lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    (
        "optim.milestones.*",
        lambda v: _number(v) and 0 < v < 1,
        "a fraction of the budget in (0, 1)",
    ),
    ("stopping.check_every", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("stopping.members.*.check_every", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("data.kernel_size", lambda v: _whole(v, 1), "a whole number >= 1, or a pair of them"),
    ("data.kernel_size.*", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("data.kernel_sizes.*", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("data.kernel_size_patterns.*", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("data.true_kernel_size", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("data.crop", lambda v: v is None or _whole(v, 8), "null or a whole number >= 8"),
    ("data.size", lambda v: _whole(v, 8), "a whole number >= 8"),
    ("data.noise", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("seed", lambda v: _whole(v, 0) and v < 2**63, "a whole number in [0, 2^63)"),
    ("data.seed", lambda v: _whole(v, 0) and v < 2**63, "a whole number in [0, 2^63)"),
    ("loss.terms.*.weight", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("loss.terms.*.weight.value", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("metrics.cut", lambda v: _whole(v, 0), "a whole number >= 0"),
    ("portfolio.seeds", lambda v: _whole(v, 1) and v <= 1000, "a whole number in [1, 1000]"),
    (
        "portfolio.prune_at.*",
        lambda v: _number(v) and 0 < v < 1,
        "a fraction of the budget in (0, 1)",
    ),
    (
        "portfolio.keep",
        lambda v: _number(v) and 0 < v <= 1,
        "a fraction in (0, 1] (1: score the candidates at the rungs, give none up)",
    ),
    ("metrics.max_shift", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("solver.batch_size", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("solver.bf16", lambda v: v in (True, False, "auto"), "true, false or auto"),
    ("solver.channels_last", lambda v: v in (True, False, "auto"), "true, false or auto"),
    ("solver.compile_mode", lambda v: v in COMPILE_MODES, "one of " + ", ".join(COMPILE_MODES)),
]


def _missing_keys(node: Any, path: str = "") -> Iterator[str]:
    """The dotted paths of the mandatory values (``???``) under ``node``, Hydra's node aside
    (read without resolving anything, so Hydra's run-time interpolations stay untouched)."""
    if isinstance(node, DictConfig):
        keys: list[Any] = list(node.keys())
    elif isinstance(node, ListConfig):
        keys = list(range(len(node)))
    else:
        return
    for key in keys:
        child_path = f"{path}.{key}" if path else str(key)
        if child_path == "hydra":
            continue
        child = node._get_node(key)
        if child is not None and child._is_missing():
            yield child_path
        elif isinstance(child, (DictConfig, ListConfig)):
            yield from _missing_keys(child, child_path)


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.path, value)`` of every node under ``node``, containers included."""
    if isinstance(node, DictConfig):
        items = [(str(key), node._get_node(key)) for key in node.keys()]
    elif isinstance(node, ListConfig):
        items = [(str(index), node._get_node(index)) for index in range(len(node))]
    else:
        return
    for key, child in items:
        child_path = f"{path}.{key}" if path else key
        if child_path == "hydra":  # Hydra's own node (its run-time values resolve later)
            continue
        if child is not None and child._is_missing():
            continue  # ??? is the data check's business
        value = OmegaConf.select(node, key) if isinstance(node, DictConfig) else node[int(key)]
        yield child_path, value
        yield from _leaves(value, child_path)


def _matches(pattern: str, path: str) -> bool:
    parts, keys = pattern.split("."), path.split(".")
    return len(parts) == len(keys) and all(p in ("*", k) for p, k in zip(parts, keys, strict=True))


def check_values(cfg: DictConfig) -> None:
    """Raise :class:`PreflightError` for the first value that :data:`VALUE_RULES` refuses,
    e.g. ``optim.iterations must be a whole number >= 1; got 0``."""
    for path, value in _leaves(cfg):
        for pattern, valid, expected in VALUE_RULES:
            if _matches(pattern, path) and not isinstance(value, (DictConfig, ListConfig)):
                if not valid(value):
                    raise PreflightError(f"{path} must be {expected}; got {value!r}")


# -- keys no constructor takes -----------------------------------------------------------------

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _parameters(target: str) -> set[str] | None:
    """The keyword parameters that ``target`` takes, or None when it takes any (``**kwargs``)
    or cannot be inspected."""
    from hydra._internal.utils import _locate

    try:
        signature = inspect.signature(_locate(target))
    except (ImportError, ValueError, TypeError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return {
        name
        for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def check_unknown_keys(cfg: DictConfig) -> None:
    """Raise :class:`PreflightError` for a key that the ``_target_`` of its group does not
    take (``+optim.iteration=60``), naming the valid keys."""
    nodes = [("", cfg)] + [
        (path, value) for path, value in _leaves(cfg) if isinstance(value, DictConfig)
    ]
    for path, node in nodes:
        if "_target_" not in node:
            continue
        valid = _parameters(str(node._target_))
        if valid is None:
            continue
        unknown = sorted(set(node.keys()) - valid - _HYDRA_KEYS)
        if unknown:
            where = f"{path}." if path else ""
            raise PreflightError(
                f"unknown key {where}{unknown[0]} ({node._target_.rsplit('.', 1)[-1]}); "
                f"valid keys of {path or 'the config'}: {', '.join(sorted(valid))}"
            )


PORTFOLIO_KEYS = ("arms", "seeds", "supervisor_candidate", "prune_at", "keep")


def _presets() -> list[str] | None:
    """The experiment presets Hydra can compose (``conf/exp/``), where Hydra is running."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return None
    return sorted(GlobalHydra.instance().config_loader().get_group_options("exp"))


def check_portfolio(cfg: DictConfig) -> None:
    """A portfolio needs arms that are experiment presets (not itself), an arbiter whose
    criteria exist (when one is chosen), and one image at a time."""
    portfolio = cfg.get("portfolio")
    if not portfolio:
        if cfg.get("arbiter"):
            raise PreflightError(
                "arbiter= chooses among a portfolio's candidates: add +exp=portfolio "
                "(or portfolio=default), or leave arbiter= out"
            )
        return
    from weakdeblur.arbiter import CRITERIA, DEFAULT_CRITERIA, POPULATION_CRITERIA
    from weakdeblur.runtime.portfolio import Pruning

    unknown = sorted(set(portfolio.keys()) - set(PORTFOLIO_KEYS))
    if unknown:
        raise PreflightError(
            f"unknown key portfolio.{unknown[0]}; valid keys: {', '.join(PORTFOLIO_KEYS)}"
        )
    arms = portfolio.get("arms")
    if not isinstance(arms, ListConfig) or not arms or not all(isinstance(a, str) for a in arms):
        raise PreflightError(
            "portfolio.arms: a non-empty list of experiment presets, e.g. [selfdeblur,weak_rec_es]"
        )
    presets = _presets()
    for arm in arms:
        if arm == "portfolio" or (presets is not None and arm not in presets):
            choices = ", ".join(p for p in presets or [] if p != "portfolio")
            raise PreflightError(f"portfolio.arms: unknown arm {arm!r}; choose from {choices}")
    if not isinstance(portfolio.get("supervisor_candidate", True), bool):
        raise PreflightError("portfolio.supervisor_candidate: true or false")
    prune_at = portfolio.get("prune_at")
    prune_at = ListConfig([]) if prune_at is None else prune_at
    if not isinstance(prune_at, ListConfig):
        raise PreflightError(
            f"portfolio.prune_at: a list of fractions, e.g. [0.3,0.6]; got {prune_at!r}"
        )
    if list(prune_at) != sorted(set(prune_at)):
        raise PreflightError(f"portfolio.prune_at: increasing fractions; got {list(prune_at)}")
    iterations = (cfg.get("optim") or {}).get("iterations")
    if prune_at and _number(iterations) and all(_number(f) for f in prune_at):
        rungs = Pruning(list(prune_at)).rungs(int(iterations))
        if len(set(rungs)) != len(rungs) or rungs[-1] >= iterations:
            raise PreflightError(
                f"portfolio.prune_at={list(prune_at)} puts rungs at iterations {rungs} of "
                f"optim.iterations={iterations}: each rung needs an iteration of its own, "
                "before the end of the budget"
            )
    if portfolio.get("keep") == 1 and not prune_at:
        raise PreflightError(
            "portfolio.keep=1 scores the candidates at the rungs of portfolio.prune_at, "
            "which is empty: give the rungs, e.g. portfolio.prune_at=[0.3,0.6]"
        )
    if len(set(arms)) != len(arms):
        raise PreflightError(f"portfolio.arms: an arm is listed twice: {list(arms)}")
    arbiter = cfg.get("arbiter") or {}  # none: the default arbiter
    criteria = arbiter.get("criteria") or {}
    for name, weight in criteria.items():
        if name not in CRITERIA:
            raise PreflightError(
                f"arbiter.criteria: unknown criterion {name!r}; choose from {', '.join(CRITERIA)}"
            )
        if not _number(weight) or weight <= 0:
            raise PreflightError(f"arbiter.criteria.{name}: a number > 0; got {weight!r}")
    if arbiter and not criteria:
        raise PreflightError("arbiter.criteria: at least one criterion, e.g. cross_validated_fit")
    for gate in ("discrepancy", "excess"):
        value = arbiter.get(gate)
        if value is not None and (not _number(value) or value <= 0):
            raise PreflightError(f"arbiter.{gate}: a number > 0 or null; got {value!r}")
    prefer = arbiter.get("prefer")
    prefer = ListConfig([]) if prefer is None else prefer
    if not isinstance(prefer, ListConfig):
        raise PreflightError(f"arbiter.prefer: a list of arms, e.g. [weak_rec_es]; got {prefer!r}")
    known = [p for p in presets or arms if p != "portfolio"]  # absent arms are passed over
    for arm in prefer:
        if str(arm).removeprefix("xbar-") not in known:
            raise PreflightError(
                f"arbiter.prefer: unknown arm {arm!r}; choose from {', '.join(known)} "
                "(or xbar-ARM for g's own estimate)"
            )
    if portfolio.get("prune_at") and set(criteria or DEFAULT_CRITERIA) & POPULATION_CRITERIA:
        raise PreflightError(
            "portfolio.prune_at: pruning scores each candidate alone at its rungs; "
            f"{', '.join(sorted(POPULATION_CRITERIA))} compares candidates (choose another arbiter)"
        )


PORTFOLIO_OVERRIDES = ("exp=", "portfolio", "arbiter")  # what an arm's composition leaves out


def compose_arms(cfg: DictConfig, overrides: list[str], config_name: str) -> dict[str, DictConfig]:
    """Each arm of ``cfg.portfolio``: ``+exp=ARM`` with the run's ``overrides`` (those choosing
    the preset, the portfolio and the arbiter aside), composed by Hydra and checked like a run
    of its own. Raise :class:`PreflightError` naming the arm that cannot take them."""
    from hydra import compose
    from hydra.errors import HydraException

    kept = [o for o in overrides if not o.lstrip("+~").startswith(PORTFOLIO_OVERRIDES)]
    arms = {}
    for name in cfg.portfolio.arms:
        try:
            arms[name] = compose(config_name, overrides=[*kept, f"+exp={name}"])
            check_settings(arms[name])
        except (HydraException, OmegaConfBaseException, PreflightError) as error:
            first = (str(error).strip() or type(error).__name__).splitlines()[0]
            raise PreflightError(
                f"portfolio arm {name}: {first} (the command's overrides apply to every arm; "
                "give one arm's own settings in a preset)"
            ) from error
    check_preferred_estimates(cfg, arms)
    return arms


def check_preferred_estimates(cfg: DictConfig, arms: dict[str, DictConfig]) -> None:
    """``arbiter.prefer`` may name g's own estimate, ``xbar-ARM``: that candidate exists only
    with ``portfolio.supervisor_candidate`` and an arm whose supervisor estimates a kernel."""
    for entry in (cfg.get("arbiter") or {}).get("prefer") or []:
        arm = str(entry).removeprefix("xbar-")
        if arm == entry or arm not in arms:
            continue
        if not cfg.portfolio.get("supervisor_candidate"):
            raise PreflightError(
                f"arbiter.prefer: {entry} is g's own estimate, a candidate only with "
                "portfolio.supervisor_candidate=true"
            )
        estimates, name = _estimates_kernel(arms[arm])
        if not estimates:
            raise PreflightError(
                f"arbiter.prefer: {entry} needs an arm whose supervisor estimates the blur "
                f"kernel (supervisor=map); arm {arm}'s supervisor is {name}"
            )


def _estimates_kernel(cfg: DictConfig) -> tuple[bool, str]:
    """Whether ``cfg``'s supervisor estimates the blur kernel (overrides
    ``Supervisor.kernel_estimate``), and its class name (``none`` without one)."""
    from hydra.utils import get_class

    from weakdeblur.supervisors.base import Supervisor

    supervisor = cfg.get("supervisor") or {}
    target = supervisor.get("_target_") if isinstance(supervisor, DictConfig) else None
    kind = get_class(target) if target else None
    name = target.rsplit(".", 1)[-1] if target else "none"
    return kind is not None and kind.kernel_estimate is not Supervisor.kernel_estimate, name


def check_kernel_supervisor(cfg: DictConfig) -> None:
    """``gate`` and ``kernel_start`` read the supervisor's kernel estimate k̄: the supervisor
    must be one that estimates a kernel (it overrides ``Supervisor.kernel_estimate``)."""
    users = [group for group in ("gate", "kernel_start") if cfg.get(group)]
    if not users:
        return
    estimates, name = _estimates_kernel(cfg)
    if not estimates:
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


class OutputFolderCheck(Callback):
    """Hydra callback of the other entry points, before Hydra makes the output folder (and
    its log): the folder can be made, and holds none of the ``results`` files of an earlier
    run (a new run never overwrites them). One line, exit 2."""

    def __init__(self, results: list[str] | None = None):
        self.results = list(results or [])

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.run.dir)
        try:
            check_output_folder(folder)
            for name in self.results:
                if (folder / name).exists():
                    raise PreflightError(
                        f"{folder} already holds results ({name}): choose another out= or move it"
                    )
        except PreflightError as error:
            fail(str(error))


class Preflight(Callback):
    """Hydra callback: the checks above before the run folder is created (single runs)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_settings(config)
            if config.get("portfolio"):
                compose_arms(
                    config, list(config.hydra.overrides.task), config.hydra.job.config_name
                )
            check_output_folder(config.hydra.run.dir)
            check_data(config)
        except PreflightError as error:
            fail(str(error))


# -- Hydra's composition errors, in one line -----------------------------------------------------


def composition_message(error: Exception, config_dir: Path, config_name: str) -> str:
    """One line for a Hydra composition error: an unknown option of a group lists the valid
    ones, an unknown key lists the keys of its node; anything else is Hydra's first line."""
    text = f"{error}\n{error.__cause__ or ''}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if missing:
        group, name = missing.groups()
        options = sorted(p.stem for p in (config_dir / group).glob("*.yaml"))
        return f"unknown {group} {name!r}; choose one of: {', '.join(options)}"
    override = re.search(r"Could not override '([^']+)'", text)
    if override and "No match in the defaults list" in text:
        key = override.group(1)
        given = next((a for a in sys.argv[1:] if a.split("=")[0] == key), f"{key}=NAME")
        return f"{key} is not in the defaults list (presets are added): use +{given}"
    append = re.search(r"To append to your config use (\+\S+)", text)
    nested = re.search(r"Key '([^']+)' is not in struct", text)
    if override and append and nested and nested.group(1) != override.group(1).split(".")[-1]:
        # a dict value with keys the config's (empty) dict does not have
        key = override.group(1)
        return f"{key} gets new keys ({nested.group(1)!r}, ...): use {append.group(1)}"
    if override and "is not in struct" in text:
        key = override.group(1)
        parent, _, leaf = key.rpartition(".")
        keys = _keys_of(config_dir, config_name, parent)
        where = f"of {parent}" if parent else "at the top level"
        listed = f"; keys {where}: {', '.join(keys)}" if keys else ""
        return f"unknown key {key}{listed}"
    from hydra.errors import OverrideParseException

    if isinstance(error, OverrideParseException):
        bad = next((a for a in sys.argv[1:] if not a.startswith("-") and _unparsable(a)), None)
        return f"cannot parse the override {bad!r}: {lines[0]}" if bad else lines[0]
    return lines[0] if lines else type(error).__name__


def _unparsable(argument: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_overrides([argument])
    except Exception:  # noqa: BLE001 - any parse failure names this argument
        return True
    return False


def _keys_of(config_dir: Path, config_name: str, parent: str) -> list[str]:
    """The keys of ``parent`` in the primary config with the command line's other group
    choices, or [] when that cannot be composed."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    groups = {p.name for p in config_dir.iterdir() if p.is_dir()}
    choices = [a for a in sys.argv[1:] if a.split("=")[0].lstrip("+~") in groups and "," not in a]
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=choices)
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # noqa: BLE001 - the list is a courtesy; the message stands without it
        return []
    if not isinstance(node, DictConfig):
        return []
    return sorted(key for key in node.keys() if key not in _HYDRA_KEYS and key != "hydra")


def run_hydra_main(main: Callable[[], Any], config_dir: Path, config_name: str) -> None:
    """Call a ``@hydra.main`` entry point; a composition error (unknown preset or option,
    unknown key, bad override syntax) ends in one line on stderr and exit 2 instead of
    Hydra's page. ``HYDRA_FULL_ERROR=1`` keeps Hydra's own report."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing
    try:
        main()
    except (ConfigCompositionException, OverrideParseException) as error:
        fail(composition_message(error, config_dir, config_name))
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
