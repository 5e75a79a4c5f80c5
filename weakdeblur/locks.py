"""Per-image lock files, so two runs pointed at one output folder never write the same image.

Before an image starts, the run creates ``<output>/<image>/.lock`` with
``O_CREAT | O_EXCL`` (atomic on local file systems and on NFSv3+), holding
the owner's host, pid and start time as JSON. A second run that finds the
lock **refuses that image** (reports it ``locked``) and goes on with the
next one; it never waits. A lock left by a process that no longer exists on
the same host (``kill -9``, a node reboot without cleanup) is stale: it is
removed and taken over, with a warning. A lock from another host cannot be
checked and is respected; remove the file by hand if that run is gone.
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
                same_host = owner.get("host") == me["host"]
                pid = owner.get("pid")
                if same_host and isinstance(pid, int) and not _alive(pid):
                    log.warning(
                        "%s: removing a stale lock of pid %s (no longer running)",
                        self.path.parent.name,
                        pid,
                    )
                    self.path.unlink(missing_ok=True)
                    continue
                raise ImageLocked(self.path, owner) from None
            with os.fdopen(handle, "w") as stream:
                json.dump(me, stream)
            self.held = True
            return
        raise ImageLocked(self.path, _owner(self.path))

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
