r"""Calibrate the consistency stopping rule (Eq. 7) on finished runs.

``python -m weakdeblur.calibrate PATH... [--max-mean-iterations B]``

Reads every image folder under the given run or sweep folders (``history.json``
plus ``metrics.json``) whose history records the rule's statistic (default
``stop_consistency``, written by ``stopping=consistency``) and PSNR against ground
truth, replays the rule offline for a grid of threshold :math:`t`, consecutive
checks :math:`n` and check interval :math:`m`, and prints the settings with the
smallest mean detection gap

.. math::

    \overline{\text{gap}}(t, n, m) = \frac{1}{|I|} \sum_{i \in I}
        \Big(\max_s \mathrm{PSNR}_i(s) - \mathrm{PSNR}_i\big(t^{\text{stop}}_i(t, n, m)\big)\Big)

among those whose mean stop iteration is at most ``--max-mean-iterations``
(default: no limit beyond each run's budget), ties broken by fewer iterations.

The runs must have gone the whole budget with the statistic logged at every
check, e.g. ``stopping=consistency stopping.threshold=null`` (records, never
stops) with ``stopping.check_every`` equal to ``optim.log_every``; :math:`m` can
then be any multiple of that cadence. Calibrate on images you do not report
on (synthetic blurs, e.g. ``data=demo`` over several ``data.seed``), never on
the Levin images of the evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from weakdeblur.detection import peak
from weakdeblur.runtime.resume import SUPERSEDED_DIR
from weakdeblur.runtime.tracking import write_json


@dataclass
class Trace:
    """One image's full-budget run: the statistic and PSNR at every logged check."""

    path: Path
    budget: int
    iterations: list[int]  # rows holding both the statistic and PSNR, ascending
    values: list[float]
    psnr: list[float]
    peak_psnr: float
    peak_iteration: int
    last_psnr: float  # the budget's (last) iterate, what the fixed budget returns

    def cadence(self) -> int:
        """The logged check interval (every multiple of it has a row)."""
        return math.gcd(*self.iterations)


@dataclass
class Rule:
    threshold: float
    consecutive: int
    check_every: int
    relative: bool


@dataclass
class Outcome:
    rule: Rule
    mean_gap: float
    mean_psnr: float
    mean_iterations: float
    mean_saved: float
    stopped: float  # fraction of images stopped before the budget


def load_traces(paths: Sequence[Path], statistic: str) -> tuple[list[Trace], list[str]]:
    """Image folders under ``paths`` usable for calibration, and why the others were skipped."""
    traces: list[Trace] = []
    skipped: list[str] = []
    for root in paths:
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        files = (
            [root]
            if root.name == "history.json"
            else sorted(  # results set aside when an image was redone are not the run's
                path for path in root.rglob("history.json") if SUPERSEDED_DIR not in path.parts
            )
        )
        for history_file in files:
            folder = history_file.parent
            metrics_file = folder / "metrics.json"
            if not metrics_file.is_file():
                skipped.append(f"{folder}: no metrics.json")
                continue
            metrics = json.loads(metrics_file.read_text())
            history = json.loads(history_file.read_text())
            if metrics.get("status") != "ok":
                skipped.append(f"{folder}: status {metrics.get('status')}")
                continue
            if metrics.get("stopped_early"):
                skipped.append(f"{folder}: stopped early (its history cannot be replayed)")
                continue
            best = peak(history)
            rows = [
                row
                for row in history
                if isinstance(row.get(statistic), (int, float)) and "psnr" in row
            ]
            if best is None or not rows:
                skipped.append(f"{folder}: no {statistic} and psnr in the history")
                continue
            traces.append(
                Trace(
                    path=folder,
                    budget=int(metrics.get("budget", metrics.get("iterations", 0))),
                    iterations=[int(row["iteration"]) for row in rows],
                    values=[float(row[statistic]) for row in rows],
                    psnr=[float(row["psnr"]) for row in rows],
                    peak_psnr=best["psnr"],
                    peak_iteration=int(best["iteration"]),
                    last_psnr=float(history[-1]["psnr"]),
                )
            )
    return traces, skipped


def replay(trace: Trace, rule: Rule, first_allowed: int) -> tuple[int, float]:
    """Where Eq. 7 with ``rule`` stops on ``trace``: (stop iteration, returned PSNR)."""
    checks = [i for i, it in enumerate(trace.iterations) if it % rule.check_every == 0]
    if not checks:
        return trace.budget, trace.last_psnr
    tolerance = rule.threshold * trace.values[checks[0]] if rule.relative else rule.threshold
    count = 0
    for index in checks:
        if trace.iterations[index] < first_allowed:
            continue
        count = count + 1 if trace.values[index] <= tolerance else 0
        if count >= rule.consecutive:
            return trace.iterations[index], trace.psnr[index]
    return trace.budget, trace.last_psnr


def first_allowed(budget: int, min_iteration: int, min_fraction: float) -> int:
    return max(min_iteration, math.ceil(min_fraction * budget))


def evaluate(
    traces: Sequence[Trace], rule: Rule, min_iteration: int, min_fraction: float
) -> Outcome:
    gaps, returned, stops, saved, early = [], [], [], [], 0
    for trace in traces:
        stop, psnr = replay(trace, rule, first_allowed(trace.budget, min_iteration, min_fraction))
        gaps.append(trace.peak_psnr - psnr)
        returned.append(psnr)
        stops.append(stop)
        saved.append(trace.budget - stop)
        early += stop < trace.budget
    return Outcome(
        rule,
        statistics.fmean(gaps),
        statistics.fmean(returned),
        statistics.fmean(stops),
        statistics.fmean(saved),
        early / len(traces),
    )


def candidate_thresholds(values: Sequence[float], count: int = 40) -> list[float]:
    """Thresholds between the observed values: midpoints of consecutive distinct quantiles
    (a rule only changes when t crosses an observed value, so a midpoint is the robust
    representative of its interval), plus one above the largest."""
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return []
    picks = sorted(
        {finite[min(len(finite) - 1, round(q * (len(finite) - 1)))] for q in _levels(count)}
    )
    above = picks[-1] + (picks[-1] - picks[-2]) / 2 if len(picks) > 1 else abs(picks[-1]) + 1.0
    return [(a + b) / 2 for a, b in zip(picks, picks[1:], strict=False)] + [above]


def _levels(count: int) -> list[float]:
    return [i / (count - 1) for i in range(count)] if count > 1 else [0.5]


def calibrate(
    traces: Sequence[Trace],
    consecutive: Sequence[int] = (1, 2, 3, 5),
    check_every: Sequence[int] | None = None,
    thresholds: Sequence[float] | None = None,
    modes: Sequence[bool] = (False, True),
    min_iteration: int = 0,
    min_fraction: float = 0.2,
    max_mean_iterations: float | None = None,
) -> list[Outcome]:
    """Every candidate rule's outcome, best first (feasible ones only)."""
    if not traces:
        return []
    cadence = max(trace.cadence() for trace in traces)
    intervals = list(check_every) if check_every else [cadence, 2 * cadence, 5 * cadence]
    outcomes: list[Outcome] = []
    for relative in modes:
        if thresholds:
            grid = list(thresholds)
        else:
            pooled = []
            for trace in traces:
                start = first_allowed(trace.budget, min_iteration, min_fraction)
                scale = trace.values[0] if relative else 1.0
                pooled += [
                    value / scale if scale else math.nan
                    for it, value in zip(trace.iterations, trace.values, strict=True)
                    if it >= start
                ]
            grid = candidate_thresholds(pooled)
        for interval in intervals:
            for n in consecutive:
                for threshold in grid:
                    outcome = evaluate(
                        traces, Rule(threshold, n, interval, relative), min_iteration, min_fraction
                    )
                    if (
                        max_mean_iterations is None
                        or outcome.mean_iterations <= max_mean_iterations
                    ):
                        outcomes.append(outcome)
    outcomes.sort(key=lambda o: (round(o.mean_gap, 9), o.mean_iterations))
    unique, seen = [], set()
    for outcome in outcomes:  # thresholds that stop every image at the same place: keep one
        rule = outcome.rule
        key = (rule.relative, rule.consecutive, rule.check_every, round(outcome.mean_gap, 9))
        key += (round(outcome.mean_iterations, 6),)
        if key not in seen:
            seen.add(key)
            unique.append(outcome)
    return unique


def overrides(rule: Rule, min_iteration: int, min_fraction: float) -> str:
    return (
        f"stopping=consistency stopping.threshold={rule.threshold:.6g} "
        f"stopping.relative={str(rule.relative).lower()} stopping.consecutive={rule.consecutive} "
        f"stopping.check_every={rule.check_every} stopping.min_iteration={min_iteration} "
        f"stopping.min_fraction={min_fraction}"
    )


def table(outcomes: Sequence[Outcome], traces: Sequence[Trace], top: int) -> str:
    lines = [
        f"{'rule':<34} {'gap dB':>7} {'PSNR':>7} {'iters':>8} {'saved':>8} {'stopped':>8}",
    ]
    mean = statistics.fmean
    fixed_gap = mean([t.peak_psnr - t.last_psnr for t in traces])
    lines.append(
        f"{'fixed budget':<34} {fixed_gap:7.3f} {mean([t.last_psnr for t in traces]):7.2f} "
        f"{mean([t.budget for t in traces]):8.1f} {0.0:8.1f} {0.0:8.0%}"
    )
    lines.append(
        f"{'oracle (peak at log steps)':<34} {0.0:7.3f} {mean([t.peak_psnr for t in traces]):7.2f} "
        f"{mean([t.peak_iteration for t in traces]):8.1f} "
        f"{mean([t.budget - t.peak_iteration for t in traces]):8.1f} {'-':>8}"
    )
    for outcome in outcomes[:top]:
        rule = outcome.rule
        kind = "rel" if rule.relative else "abs"
        label = f"t={rule.threshold:.4g} ({kind}) n={rule.consecutive} m={rule.check_every}"
        lines.append(
            f"{label:<34} {outcome.mean_gap:7.3f} {outcome.mean_psnr:7.2f} "
            f"{outcome.mean_iterations:8.1f} {outcome.mean_saved:8.1f} {outcome.stopped:8.0%}"
        )
    return "\n".join(lines)


def _numbers(text: str, kind: type) -> list:
    return [kind(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m weakdeblur.calibrate",
        description="Pick the consistency rule's threshold t, consecutive checks n and interval m "
        "minimising the mean detection gap over finished full-budget runs.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run or sweep folders")
    parser.add_argument("--statistic", default="stop_consistency", help="history column")
    parser.add_argument("--consecutive", default="1,2,3,5", help="n values, comma-separated")
    parser.add_argument(
        "--check-every", default=None, help="m values (multiples of the logged cadence)"
    )
    parser.add_argument("--thresholds", default=None, help="t values (default: data quantiles)")
    parser.add_argument(
        "--mode", choices=["absolute", "relative", "both"], default="both", help="kind of t"
    )
    parser.add_argument("--min-iteration", type=int, default=0)
    parser.add_argument("--min-fraction", type=float, default=0.2)
    parser.add_argument(
        "--max-mean-iterations", type=float, default=None, help="iteration budget (mean per image)"
    )
    parser.add_argument("--top", type=int, default=15, help="rows to print")
    parser.add_argument("--output", type=Path, default=None, help="write the choice as JSON")
    args = parser.parse_args(argv)

    try:
        traces, skipped = load_traces(args.paths, args.statistic)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if not traces:
        print(
            f"error: no finished full-budget run with '{args.statistic}' and psnr in its history "
            "under the given paths (run with stopping=consistency stopping.threshold=null on "
            "images with ground truth)",
            file=sys.stderr,
        )
        return 2
    cadence = max(trace.cadence() for trace in traces)
    check_every = _numbers(args.check_every, int) if args.check_every else None
    if check_every and any(m % cadence for m in check_every):
        print(f"error: --check-every values must be multiples of {cadence}", file=sys.stderr)
        return 2
    modes = {"absolute": (False,), "relative": (True,), "both": (False, True)}[args.mode]
    outcomes = calibrate(
        traces,
        consecutive=_numbers(args.consecutive, int),
        check_every=check_every,
        thresholds=_numbers(args.thresholds, float) if args.thresholds else None,
        modes=modes,
        min_iteration=args.min_iteration,
        min_fraction=args.min_fraction,
        max_mean_iterations=args.max_mean_iterations,
    )
    print(
        f"{len(traces)} image run(s), statistic {args.statistic}, logged every {cadence} iterations"
    )
    print(table(outcomes, traces, args.top))
    if not outcomes:
        print("error: no rule meets --max-mean-iterations", file=sys.stderr)
        return 1
    best = outcomes[0]
    choice = overrides(best.rule, args.min_iteration, args.min_fraction)
    print(f"best: {choice}")
    if args.output is not None:
        write_json(
            args.output,
            {
                "overrides": choice,
                **asdict(best),
                "images": [str(trace.path) for trace in traces],
                "max_mean_iterations": args.max_mean_iterations,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
