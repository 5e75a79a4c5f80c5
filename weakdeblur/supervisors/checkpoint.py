"""Loading checkpoints without running code from them.

Every checkpoint is read with ``torch.load(weights_only=True)``: only
tensors, numbers, strings and containers are unpickled; a file carrying any
other pickled object (a class, a function, a ``__reduce__`` payload) is
refused with one line, before any of it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from weakdeblur.supervisors.errors import SupervisorError


def load_checkpoint(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    Raises :class:`SupervisorError` when the file is missing, unreadable, or
    holds pickled objects other than plain data (possibly code).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise SupervisorError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise SupervisorError(
                f"refused {what} {path}: it carries pickled objects other than tensors "
                "(possibly code); checkpoints are loaded with torch.load(weights_only=True), "
                "re-save it as a plain state dict"
            ) from error
        raise SupervisorError(f"cannot read {what} {path}: {_first_line(error)}") from error
    except Exception as error:  # zip/pickle/EOF errors of many kinds (a text file: KeyError)
        raise SupervisorError(
            f"cannot read {what} {path}: not a torch checkpoint "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def mismatch(error: BaseException) -> str:
    """The first concrete problem of a ``load_state_dict`` error, on one line
    (torch's message starts with a generic header line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = (lines[1:] or lines or [type(error).__name__])[0].rstrip(".")
    return detail if len(detail) <= 240 else detail[:240] + " ..."


def load_state_dict(
    path: str | Path | None, key: str | None = "params", prefix: str | None = None
) -> dict[str, torch.Tensor]:
    """The state dict ``torch.load(path, weights_only=True)[key]`` (the whole file when
    ``key`` is None), with ``prefix`` (e.g. ``"module."`` of DataParallel) removed from
    its names. Raises :class:`SupervisorError` with one line for a missing path or key."""
    if path is None:
        raise SupervisorError("this supervisor needs a checkpoint: supervisor.checkpoint=PATH")
    path = Path(path).expanduser()
    if not path.is_file():
        raise SupervisorError(
            f"supervisor checkpoint not found: {path} (set supervisor.checkpoint=PATH)"
        )
    state = load_checkpoint(path, "supervisor checkpoint")
    if key is not None:
        if not (isinstance(state, dict) and isinstance(state.get(key), dict)):
            keys = list(state)[:5] if isinstance(state, dict) else type(state).__name__
            raise SupervisorError(f"{path} has no '{key}' state dict (found {keys})")
        state = state[key]
    if not isinstance(state, dict):
        raise SupervisorError(f"{path} holds a {type(state).__name__}, not a state dict")
    state = dict(state)
    if prefix:
        consume_prefix_in_state_dict_if_present(state, prefix)
    return state


def load_weights(
    net: nn.Module,
    path: str | Path | None,
    key: str | None = "params",
    prefix: str | None = None,
    description: str | None = None,
) -> None:
    """Loads :func:`load_state_dict` into ``net`` with ``strict=True``; a missing,
    unexpected or mis-shaped parameter is one :class:`SupervisorError` naming the file,
    the network (``description``, default its class) and the first mismatch."""
    state = load_state_dict(path, key, prefix)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise SupervisorError(
            f"{path} does not match {description or type(net).__name__}: {mismatch(error)}"
        ) from error
