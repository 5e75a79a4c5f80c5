"""Resumable runs: which images of an output folder are already done, and clean interruption.

An image counts as complete when its ``metrics.json`` says ``status: ok``,
every artefact of :data:`ARTEFACTS` exists, and the record's configuration
fingerprint equals the current one (so re-running the same folder with other
settings redoes the images instead of silently keeping stale results).
Anything else (``running``, ``interrupted``, ``failed``, missing files) is
redone.

A scheduler stops a job with SIGTERM; :func:`sigterm_as_interrupt` turns it
into the same :class:`KeyboardInterrupt` path as Ctrl-C, so the finished
images stay intact and the current one is marked ``interrupted``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from weakdeblur.runtime.locks import LOCK_FILE
from weakdeblur.runtime.tracking import METRICS_FILE

log = logging.getLogger(__name__)

ARTEFACTS = ("x.png", "k.png", "k.pt", "y_hat.png", "blurry.png", "history.json", METRICS_FILE)

# Settings that do not change an image's result: excluded from the fingerprint.
NEUTRAL_KEYS = ("logger", "progress", "device", "threads", "resume", "run_name", "hydra")
NEUTRAL_DATA_KEYS = ("images",)  # which images run, not how
NEUTRAL_SOLVER_KEYS = ("batch_size",)  # batched runs give the images of one-at-a-time runs
# Keys added after runs were made, at the value that reproduces those runs: left out of the
# fingerprint at that value, so older output folders still resume; any other value counts.
LATER_KEY_DEFAULTS = {"seed_mode": "seeded"}


def fingerprint(config: Mapping[str, Any]) -> str:
    """A short hash of the resolved configuration minus :data:`NEUTRAL_KEYS`, ``data.images``,
    ``solver.batch_size`` and the keys of :data:`LATER_KEY_DEFAULTS` at their old behaviour."""
    relevant = {
        key: value
        for key, value in config.items()
        if key not in NEUTRAL_KEYS and LATER_KEY_DEFAULTS.get(key, object()) != value
    }
    if isinstance(relevant.get("data"), Mapping):
        relevant["data"] = {
            key: value for key, value in relevant["data"].items() if key not in NEUTRAL_DATA_KEYS
        }
    if isinstance(relevant.get("solver"), Mapping):
        relevant["solver"] = {
            key: value
            for key, value in relevant["solver"].items()
            if key not in NEUTRAL_SOLVER_KEYS
        }
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def completed_record(
    folder: Path, config_fingerprint: str | None = None, quiet: bool = False
) -> dict[str, Any] | None:
    """The stored record of a complete image in ``folder``, else ``None`` (with the reason
    logged, unless ``quiet``: a look that decides nothing about redoing the image)."""

    def note(level: int, message: str, *arguments: object) -> None:
        if not quiet:
            log.log(level, message, *arguments)

    path = folder / METRICS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        note(logging.WARNING, "%s: unreadable %s, redoing the image", folder.name, METRICS_FILE)
        return None
    if record.get("status") != "ok":
        note(logging.INFO, "%s: previous status %s, redoing it", folder.name, record.get("status"))
        return None
    missing = [name for name in ARTEFACTS if not (folder / name).is_file()]
    if missing:
        note(logging.WARNING, "%s: missing %s, redoing the image", folder.name, ", ".join(missing))
        return None
    stored = record.get("config_fingerprint")
    if config_fingerprint is not None and stored != config_fingerprint:
        note(
            logging.WARNING,
            "%s: finished with another configuration (%s, now %s), redoing it",
            folder.name,
            stored,
            config_fingerprint,
        )
        return None
    return record


SUPERSEDED_DIR = ".superseded"


def discard_unused_run_folder(folder: Path, hydra_subdir: str | None) -> bool:
    """Remove a run folder that a run ending before its first image leaves behind, when it
    holds nothing but what Hydra wrote into it (its ``.hydra/`` and the job's ``*.log``).
    Anything else (an image's folder, a summary, a user's file) keeps the folder as it is."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return False
    if not all(
        (child.is_dir() and child.name == hydra_subdir)
        or (child.is_file() and child.suffix == ".log")
        for child in children
    ):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def set_aside(folder: Path) -> Path | None:
    """Move a finished image about to be redone out of the way, never deleting it.

    A folder whose ``metrics.json`` says ``status: ok`` (finished with another configuration,
    or redone with ``resume=false``) goes to ``<output>/.superseded/<its fingerprint>/<image>``
    (with a time stamp appended when that exists already), so redoing an image never
    overwrites a result. Returns the new place, or ``None`` when there was nothing finished.
    """
    try:
        record = json.loads((folder / METRICS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("status") != "ok":
        return None
    target = folder.parent / SUPERSEDED_DIR / str(record.get("config_fingerprint")) / folder.name
    if target.exists():
        target = target.with_name(f"{folder.name}.{time.strftime('%Y%m%d-%H%M%S')}")
    target.mkdir(parents=True)
    for child in folder.iterdir():
        if child.name != LOCK_FILE:  # the running image's lock stays where its holder keeps it
            shutil.move(str(child), str(target / child.name))
    log.warning("%s: its finished result is kept in %s", folder.name, target)
    return target


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a :class:`KeyboardInterrupt`).

    Only the main thread can own signal handlers; elsewhere this does nothing.
    The previous handler is restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
