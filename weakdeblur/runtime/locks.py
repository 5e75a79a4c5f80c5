"""Per-image lock files, so two runs pointed at one output folder never write the same image.

Before an image starts, the run creates ``<output>/<image>/.lock`` with
``O_CREAT | O_EXCL`` (atomic on local file systems and on NFSv3+), holding
the owner's host, pid and start time as JSON. A second run that finds the
lock **refuses that image** (reports it ``locked``) and goes on with the
next one; it never waits. The holder touches the lock at every logging step
(:class:`LockHeartbeat`). A lock is stale, and is removed and taken over with
a warning, when its process no longer exists on the same host (``kill -9``),
or, for a lock of another host (a job requeued on another node after its
node died), when it has had no heartbeat for :data:`STALE_AFTER` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
STALE_AFTER = 1800.0  # seconds without a heartbeat before another host's lock is stale


class ImageLocked(Exception):
    """Another live run holds the image's lock; ``owner`` describes it."""

    def __init__(self, path: Path, owner: dict[str, Any]):
        self.path, self.owner = path, owner
        super().__init__(
            f"locked by another run (pid {owner.get('pid')} on {owner.get('host')} "
            f"since {owner.get('started')}): {path}"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class ImageLock:
    """``with ImageLock(folder): ...`` holds ``folder/.lock``; raises :class:`ImageLocked`."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_FILE
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for _ in range(2):  # a second try after removing a stale lock
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = _owner(self.path)
                stale = self._stale(owner, me["host"])
                if stale:
                    log.warning("%s: removing a stale lock (%s)", self.path.parent.name, stale)
                    self.path.unlink(missing_ok=True)
                    continue
                raise ImageLocked(self.path, owner) from None
            with os.fdopen(handle, "w") as stream:
                json.dump(me, stream)
            self.held = True
            return
        raise ImageLocked(self.path, _owner(self.path))

    def _stale(self, owner: dict[str, Any], host: str) -> str | None:
        """Why the lock held by ``owner`` is stale, or ``None`` when it may be live."""
        pid = owner.get("pid")
        if owner.get("host") == host and isinstance(pid, int):
            return None if _alive(pid) else f"pid {pid} no longer running"
        try:
            silent = time.time() - self.path.stat().st_mtime
        except OSError:
            return None
        if silent > STALE_AFTER:
            return f"{owner.get('host')} pid {pid}: no heartbeat for {silent / 60:.0f} min"
        return None

    def release(self) -> None:
        if self.held:
            if _owner(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> ImageLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def heartbeat(folder: str | os.PathLike) -> None:
    """Refresh the modification time of ``folder``'s lock (the holder is alive)."""
    try:
        os.utime(Path(folder) / LOCK_FILE)
    except OSError:
        pass


class LockHeartbeat:
    """A tracker (see :mod:`weakdeblur.runtime.tracking`) that touches the image's lock at every
    logging step, so another host can tell a live lock from one left by a dead node. A
    portfolio's candidate (``<image>/candidates/<label>``) beats for its image's lock."""

    def __init__(self, output_dir: str | os.PathLike):
        self.output_dir = Path(output_dir)

    def _image_folder(self, sample) -> Path:
        return self.output_dir / Path(sample.name).parts[0]

    def start_image(self, sample, info) -> None:
        heartbeat(self._image_folder(sample))

    def log(self, sample, record) -> None:
        heartbeat(self._image_folder(sample))

    def end_image(self, sample, result, metrics) -> None: ...

    def close(self) -> None: ...
