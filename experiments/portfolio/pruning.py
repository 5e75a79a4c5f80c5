"""What pruning saves and what it costs, replayed from one portfolio run that pruned nothing.

    python experiments/portfolio/pruning.py RUN [--keep 0.5,0.34] [--json out.json]

RUN is a ``+exp=portfolio`` run made with ``portfolio.prune_at=[...]`` and
``portfolio.keep=1``: every candidate is scored at the rungs (its ``rung_scores``) and runs to
the end. Because a candidate's trajectory up to a rung does not depend on the pruning (only
the decision there does), successive halving with any other ``keep`` is replayed exactly from
those scores, in the order the candidates ran (weakdeblur.runtime.portfolio.Pruning's own
rule): which candidates it would give up and where, the iterations and seconds left, and the
arbiter's choice among the survivors (from the stored final scores), against the choice among
all. Where the ground truth is known, the PSNR of both choices is compared per image, paired
(weakdeblur.paired). Nothing is run. Calibrate the schedule on data=shake, never on Levin.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from weakdeblur.arbiter import DEFAULT_CRITERIA, Arbiter, Candidate
from weakdeblur.paired import compare
from weakdeblur.runtime.portfolio import CANDIDATES_DIR, Pruning
from weakdeblur.runtime.tracking import METRICS_FILE


def finished_images(root: Path) -> list[tuple[str, dict]]:
    """The portfolio records of the images of ``root`` that finished."""
    found = []
    for folder in sorted(p for p in root.iterdir() if (p / METRICS_FILE).is_file()):
        record = json.loads((folder / METRICS_FILE).read_text())
        if record.get("status") == "ok" and "portfolio" in record:
            found.append((folder.name, record))
    return found


def replay_image(
    folder: Path, record: dict, arbiter: Arbiter, fractions: list[float], keep: float
) -> dict:
    """One image's portfolio under successive halving with ``keep``, from its rung scores.

    Each candidate's rungs are fractions of its own arm's budget (its ``metrics.json``'s
    ``budget``), as in the live run. A candidate that failed is not listed and cannot be
    replayed; had it reached a rung, its score would have joined the population there."""
    listed = record["portfolio"]["candidates"]
    if any("pruned_at" in entry for entry in listed):
        raise ValueError(f"{folder.name}: a candidate was pruned; replay needs portfolio.keep=1")
    pruning = Pruning(fractions, keep)
    survivors, pruned, iterations, seconds, budgets = [], {}, 0, 0.0, []
    for entry in listed:
        ran = int(entry.get("iterations") or 0)
        spent = float(entry.get("seconds") or 0.0)
        stored = folder / CANDIDATES_DIR / entry["name"] / METRICS_FILE
        if not stored.is_file():
            if ran:  # only g's own estimate (x̄, no iterations) has no folder of its own
                raise ValueError(f"{folder.name}: {entry['name']} has no {METRICS_FILE}")
            survivors.append(entry)
            continue
        candidate = json.loads(stored.read_text())
        budget = int(candidate.get("budget") or ran)
        budgets.append(budget)
        rungs, scored = pruning.rungs(budget), candidate.get("rung_scores", {})
        stop = None
        for rung in sorted(scored, key=int):  # each judgement joins the rung's population
            if pruning.gives_up(arbiter, int(rung), scored[rung]):
                stop = rungs[int(rung)]  # given up here: it never reaches the later rungs
                break
        if stop is None:
            survivors.append(entry)
            iterations, seconds = iterations + ran, seconds + spent
        else:
            pruned[entry["name"]] = stop
            iterations += stop
            seconds += spent * stop / ran if ran else 0.0

    def choice(entries: list[dict]) -> dict:
        picks = [Candidate(e["name"], e["group"], None, None, e["arm"]) for e in entries]
        scores = {name: [e["scores"][name] for e in entries] for name in arbiter.needs}
        return entries[arbiter.decide(scores, picks).index]

    full, kept = choice(listed), choice(survivors)
    found = {
        "image": folder.name,
        "pruned": pruned,
        "iterations": iterations,
        "iterations_without_pruning": sum(int(e.get("iterations") or 0) for e in listed),
        "budget": max(budgets, default=0),  # one candidate's full run: the unit of cost
        "seconds": seconds,
        "seconds_without_pruning": sum(float(e.get("seconds") or 0.0) for e in listed),
        "chosen": kept["name"],
        "chosen_without_pruning": full["name"],
    }
    if all("psnr" in e for e in listed):  # the ground truth is known
        best = max(e["psnr"] for e in listed)
        found["psnr"], found["psnr_without_pruning"] = kept["psnr"], full["psnr"]
        found["best_pruned"] = max(e["psnr"] for e in survivors) < best  # the best was given up
    return found


def replay(root: Path, arbiter: Arbiter, fractions: list[float], keep: float):
    """Every finished image of ``root`` replayed with ``keep``, and the totals."""
    images = [
        replay_image(root / name, record, arbiter, fractions, keep)
        for name, record in finished_images(root)
    ]
    if not images:
        raise ValueError(f"no finished portfolio image in {root}")
    totals = {
        "keep": keep,
        "images": len(images),
        "pruned": sum(len(i["pruned"]) for i in images),
        "iterations": sum(i["iterations"] for i in images),
        "iterations_without_pruning": sum(i["iterations_without_pruning"] for i in images),
        "seconds": sum(i["seconds"] for i in images),
        "seconds_without_pruning": sum(i["seconds_without_pruning"] for i in images),
        "per_image_in_budgets": statistics.fmean(
            i["iterations"] / i["budget"] for i in images if i["budget"]
        ),
        "changed_choices": sum(i["chosen"] != i["chosen_without_pruning"] for i in images),
    }
    totals["saved"] = 1 - totals["iterations"] / totals["iterations_without_pruning"]
    if all("psnr" in i for i in images):
        totals["best_pruned"] = sum(i["best_pruned"] for i in images)
        totals["psnr"] = statistics.fmean(i["psnr"] for i in images)
        totals["psnr_without_pruning"] = statistics.fmean(i["psnr_without_pruning"] for i in images)
        totals["difference"] = totals["psnr"] - totals["psnr_without_pruning"]
        if len(images) > 1:  # the interval needs two or more images
            paired = compare(
                {(i["image"], 0): i["psnr_without_pruning"] for i in images},
                {(i["image"], 0): i["psnr"] for i in images},
                names=("without pruning", f"keep={keep:g}"),
            )
            totals["interval"] = list(paired.interval)
    return totals, images


def keep_values(text: str) -> list[float]:
    """Comma-separated fractions in (0, 1] (argparse type), as portfolio.keep takes."""
    try:
        values = [float(value) for value in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 < value <= 1 for value in values):
        message = f"comma-separated fractions in (0, 1], e.g. 0.34,0.5; got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("run", type=Path, help="a +exp=portfolio run with portfolio.keep=1")
    parser.add_argument(
        "--keep",
        type=keep_values,
        default=[0.5],
        help="comma-separated fractions to replay (default 0.5)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    arguments = parser.parse_args(argv)
    config_file = arguments.run / ".hydra" / "config.yaml"
    if not arguments.run.exists():
        parser.error(f"no such folder: {arguments.run}")
    if not config_file.is_file():
        parser.error(f"not a weakdeblur.run folder (no .hydra/config.yaml): {arguments.run}")
    cfg = OmegaConf.load(config_file)
    if cfg.get("portfolio") is None:
        parser.error(f"not a portfolio run (+exp=portfolio): {arguments.run}")
    fractions = list(cfg.portfolio.get("prune_at") or [])
    if not fractions or cfg.portfolio.get("keep") != 1:
        parser.error(
            "the run must score the rungs and prune nothing: portfolio.prune_at=[...] "
            "portfolio.keep=1"
        )
    arbiter = (  # as weakdeblur.run builds it
        instantiate(cfg.arbiter, _convert_="all")
        if cfg.get("arbiter")
        else Arbiter(DEFAULT_CRITERIA)
    )
    found = []
    print(f"{arguments.run}: rungs at {fractions} of each pruned arm's budget")
    print(
        "pruned: candidates given up; saved: share of all iterations (of the seconds, in "
        "brackets); budgets: iterations per image in one candidate's budgets; changed: images "
        "whose choice differs from the choice among all; best lost: images whose best candidate "
        "was given up; PSNR: mean of the choices; paired diff: against the choice among all"
    )
    print(
        f"{'keep':>5} {'images':>6} {'pruned':>6} {'saved':>11} {'budgets':>8} {'changed':>7} "
        f"{'best lost':>9} {'PSNR':>6} {'paired diff':>11} {'95% interval':>16}"
    )
    for keep in arguments.keep:
        try:
            totals, images = replay(arguments.run, arbiter, fractions, keep)
        except ValueError as error:
            parser.error(str(error))
        found.append({"totals": totals, "images": images})
        psnr = f"{totals['psnr']:6.2f}" if "psnr" in totals else f"{'-':>6}"
        difference = f"{totals['difference']:+11.2f}" if "difference" in totals else f"{'-':>11}"
        interval = "[{:+.2f}, {:+.2f}]".format(*totals["interval"]) if "interval" in totals else "-"
        seconds = 1 - totals["seconds"] / (totals["seconds_without_pruning"] or 1.0)
        saved = f"{totals['saved']:.0%} ({seconds:.0%})"
        lost = f"{totals['best_pruned']:9d}" if "best_pruned" in totals else f"{'-':>9}"
        print(
            f"{keep:5g} {totals['images']:6d} {totals['pruned']:6d} {saved:>11} "
            f"{totals['per_image_in_budgets']:8.2f} {totals['changed_choices']:7d} {lost} {psnr} "
            f"{difference} {interval:>16}"
        )
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
