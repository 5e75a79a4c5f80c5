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
from collections.abc import Callable, Mapping, Sequence
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


def panel_records(
    decisions: Mapping[str, Any],
    score: Callable[[Any], Mapping[str, float]] | None,
    history: Sequence[Mapping[str, float]],
    budget: int,
    seconds: float,
    iterations: int,
) -> dict[str, dict[str, Any]]:
    """Per rule of a :class:`~weakdeblur.stopping.PolicyPanel`: the fields of
    :func:`stopping_record` as if the rule had run alone, plus its returned iterate's
    scores (``score(image)``, e.g. PSNR/SSIM against ground truth; ``None`` without
    ground truth) and ``seconds`` estimated pro rata,
    :math:`s_p = s \\cdot t_p / t_{\\text{run}}` (the panel's run went
    :math:`t_{\\text{run}}` iterations in :math:`s` seconds)."""
    records: dict[str, dict[str, Any]] = {}
    for name, decision in decisions.items():
        scores = dict(score(decision.iterate.image.float().cpu())) if score is not None else {}
        record = stopping_record(history, budget, decision.stop_iteration, scores.get("psnr"))
        record.update(
            returned_iteration=decision.iterate.iteration,
            stopped_early=decision.stopped_early,
            seconds=seconds * decision.stop_iteration / max(iterations, 1),
            **scores,
        )
        records[name] = record
    return records


def panel_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Means over images of each panel rule's ``psnr``, ``ssim``, ``detection_gap``,
    ``stop_iteration``, ``iterations_saved`` and ``seconds``."""
    by_rule: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        for name, rule in (record.get("panel") or {}).items():
            by_rule.setdefault(name, []).append(rule)
    means: dict[str, dict[str, float]] = {}
    keys = (
        "psnr",
        "ssim",
        "peak_psnr",
        "detection_gap",
        "stop_iteration",
        "iterations_saved",
        "seconds",
    )
    for name, rules in by_rule.items():
        means[name] = {"images": float(len(rules))}
        for key in keys:
            values = [r[key] for r in rules if isinstance(r.get(key), (int, float))]
            if values:
                means[name][key] = sum(values) / len(values)
    return means
