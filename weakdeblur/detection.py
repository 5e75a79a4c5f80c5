r"""How well a stopping rule did on one image: peak, detection gap, iterations saved.

From the history the solver logs (PSNR against ground truth every
``optim.log_every`` iterations and at the stop) and the score of the returned
iterate:

.. math::

    \text{peak} = \max_{t \in \text{log steps}} \mathrm{PSNR}(x_t), \qquad
    \text{gap} = \text{peak} - \mathrm{PSNR}(x_{\text{returned}}), \qquad
    \text{saved} = T - t_{\text{stop}}.

The peak is over the logged raw iterates, so it depends on the logging cadence;
the gap can be negative when the returned image is better than every logged
iterate (an exponential average, or a best iterate between log steps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def peak(history: Sequence[Mapping[str, float]], key: str = "psnr") -> dict[str, float] | None:
    """The logged row with the highest finite ``key``: ``{"psnr", "ssim", "iteration"}``, or ``None``."""
    best: Mapping[str, float] | None = None
    for row in history:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if best is None or value > best[key]:
                best = row
    if best is None:
        return None
    found = {key: float(best[key]), "iteration": float(best["iteration"])}
    if key == "psnr" and isinstance(best.get("ssim"), (int, float)):
        found["ssim"] = float(best["ssim"])
    return found


def stopping_record(
    history: Sequence[Mapping[str, float]],
    budget: int,
    stop_iteration: int,
    returned_psnr: float | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    """The stopping fields of an image's ``metrics.json``.

    Always: ``budget``, ``stop_iteration``, ``iterations_saved``; with a policy name,
    ``stopping_policy`` and ``stopping_statistics`` (the last logged ``stop_*`` values).
    With ground truth (``psnr`` in the history): ``peak_psnr``, ``peak_ssim``,
    ``peak_iteration``, ``stop_psnr``/``stop_ssim`` (the logged iterate at the stop)
    and, given the returned image's PSNR, ``detection_gap``.
    """
    record: dict[str, Any] = {
        "budget": budget,
        "stop_iteration": stop_iteration,
        "iterations_saved": budget - stop_iteration,
    }
    if policy is not None:
        record["stopping_policy"] = policy
        last: dict[str, float] = {}
        for row in history:
            last.update({k: v for k, v in row.items() if k.startswith("stop_")})
        record["stopping_statistics"] = last
    best = peak(history)
    if best is not None:
        record["peak_psnr"] = best["psnr"]
        if "ssim" in best:
            record["peak_ssim"] = best["ssim"]
        record["peak_iteration"] = int(best["iteration"])
        at_stop = [
            row for row in history if int(row["iteration"]) == stop_iteration and "psnr" in row
        ]
        if at_stop:
            record["stop_psnr"] = float(at_stop[-1]["psnr"])
            if "ssim" in at_stop[-1]:
                record["stop_ssim"] = float(at_stop[-1]["ssim"])
        if isinstance(returned_psnr, (int, float)) and math.isfinite(returned_psnr):
            record["detection_gap"] = best["psnr"] - returned_psnr
    return record
