"""How well each no-reference criterion (weakdeblur.arbiter) picks the best of several
candidate runs of the same images, measured where the ground truth is known.

    python experiments/arbiter/selection.py --portfolio PORTFOLIO_RUN [--json out.json]
    python experiments/arbiter/selection.py RUN_FOLDER RUN_FOLDER [...] [--json out.json]

``--portfolio``: a run of ``+exp=portfolio``; each image folder's ``candidates/*/`` holds a
candidate (``candidate.pt``, its exact tensors, and ``metrics.json`` with its PSNR), and g's own
estimate (x̄, k̄) is one more candidate, scored from the image's ``metrics.json``. Otherwise each
RUN_FOLDER is one candidate per image (for example one folder per seed or per arm): image
folders with ``metrics.json`` (``psnr``), ``x.png``, ``k.pt`` and ``blurry.png``; images found in
two or more folders are scored. ``--arms`` keeps some arms' candidates only (``--arms
selfdeblur``: the portfolio of SelfDeblur seeds alone); ``--by-seed`` makes one choice per
image and seed (that seed's candidates and g's x̄), paired with the baseline on the same seed.

Per image, every criterion of weakdeblur.arbiter.CRITERIA, and every combination shipped in
conf/arbiter/, scores every candidate (lower is better) and "picks" its lowest; the ground truth
only judges the pick afterwards. Printed per criterion: the selection accuracy (how often the
pick is the best candidate by PSNR), the mean PSNR of the picks against the mean candidate and
the best one (the ceiling), the mean Spearman rank correlation between the criterion and the
PSNR over each image's candidates (-1 is perfect for a lower-is-better score), and the fixed
choices (always the same arm) for comparison. Calibrate on data=shake, never on Levin.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import imageio.v3 as iio
import torch
import yaml
from scipy.stats import spearmanr

from weakdeblur.arbiter import CRITERIA, Arbiter, Candidate
from weakdeblur.paired import compare

ARBITERS = Path(__file__).resolve().parents[2] / "conf" / "arbiter"


def _grey(path: Path) -> torch.Tensor:
    array = torch.from_numpy(iio.imread(path)).double() / 255.0
    return (array.mean(-1) if array.ndim == 3 else array)[None, None]


def load_runs(folders: list[Path]) -> dict[str, list[dict]]:
    """Per image, one candidate from each run folder that finished it."""
    found: dict[str, list[dict]] = {}
    for folder in folders:
        for image in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
            metrics = json.loads((image / "metrics.json").read_text())
            if metrics.get("status") != "ok" or "psnr" not in metrics:
                continue
            found.setdefault(image.name, []).append(
                {
                    "name": folder.name,
                    "group": folder.name,
                    "arm": folder.name,
                    "seed": None,
                    "psnr": float(metrics["psnr"]),
                    "x": _grey(image / "x.png"),
                    "y": _grey(image / "blurry.png"),
                    "k": torch.load(image / "k.pt", weights_only=True).double(),
                }
            )
    return {name: c for name, c in found.items() if len(c) > 1}


def load_portfolio(root: Path) -> dict[str, list[dict]]:
    """Per finished image of a portfolio run, its candidates (g's x̄ included)."""
    found: dict[str, list[dict]] = {}
    for image in sorted(p for p in root.iterdir() if (p / "metrics.json").is_file()):
        metrics = json.loads((image / "metrics.json").read_text())
        if metrics.get("status") != "ok" or "portfolio" not in metrics:
            continue
        listed = {c["name"]: c for c in metrics["portfolio"]["candidates"]}
        y = _grey(image / "blurry.png")
        candidates = []
        for folder in sorted((image / "candidates").iterdir()):
            entry = listed.get(folder.name)
            if entry is None or entry.get("pruned_at") is not None:  # pruned: never a choice
                continue
            stored = torch.load(folder / "candidate.pt", weights_only=True)
            candidates.append(
                {
                    "name": folder.name,
                    "group": entry["group"],
                    "arm": entry["arm"],
                    "seed": entry.get("seed"),
                    "psnr": entry["psnr"],
                    "x": stored["image"].double(),
                    "y": y,
                    "k": stored["kernel"].double(),
                }
            )
            if stored.get("supervised") is not None and stored.get("supervised_kernel") is not None:
                label = f"xbar-{entry['arm']}"
                if label in listed and all(c["name"] != label for c in candidates):
                    candidates.append(
                        {
                            "name": label,
                            "group": listed[label]["group"],
                            "arm": label,
                            "seed": None,  # g's estimate: the same in every draw
                            "psnr": listed[label]["psnr"],
                            "x": stored["supervised"].double(),
                            "y": y,
                            "k": stored["supervised_kernel"].double(),
                        }
                    )
        if len(candidates) > 1:
            found[image.name] = candidates
    return found


def numbers(text: str) -> list[float]:
    """A comma-separated list of numbers (argparse type)."""
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        message = f"comma-separated numbers, e.g. 0.5,1,2; got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def names(text: str) -> list[str]:
    """A comma-separated list of names (argparse type)."""
    found = [name.strip() for name in text.split(",")]
    if not all(found):
        raise argparse.ArgumentTypeError(f"comma-separated names, e.g. selfdeblur; got {text!r}")
    return found


def _portfolio_images(folder: Path) -> bool:
    """Whether ``folder`` holds images of a portfolio run (their ``metrics.json`` says so)."""
    for metrics in folder.glob("*/metrics.json"):
        try:
            if "portfolio" in json.loads(metrics.read_text()):
                return True
        except (OSError, json.JSONDecodeError):
            continue
    return False


def check_folders(parser: argparse.ArgumentParser, runs: list[Path], portfolio: Path | None):
    """One clear message for a folder that is not what its option takes."""
    if not runs and portfolio is None:
        parser.error("give a portfolio run (--portfolio RUN) or two or more run folders")
    for folder in [*runs, *([portfolio] if portfolio else [])]:
        if not folder.is_dir():
            parser.error(f"not a run folder: {folder}")
        if (folder / "metrics.json").is_file():
            parser.error(f"{folder} is one image's folder; give its run folder: {folder.parent}")
    for folder in runs:
        if _portfolio_images(folder):
            parser.error(f"{folder} is a portfolio run: give it as --portfolio {folder}")
    if portfolio is not None and not _portfolio_images(portfolio):
        parser.error(f"{portfolio} holds no finished portfolio image (a +exp=portfolio run)")


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation (ties share ranks); ``None`` below 3 candidates or when a
    side is constant."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return float(spearmanr(a, b).statistic)


def _shipped(stem: str) -> dict:
    path = ARBITERS / f"{stem}.yaml"
    return {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "_target_"}


def arbiters(excess_grid: list[float] = ()) -> dict[str, Arbiter]:
    """Every single criterion, every combination shipped in conf/arbiter/, and the
    ``discrepancy`` preset with its absolute gate replaced by an excess gate of each value in
    ``excess_grid`` (the calibration curve of that gate)."""
    chosen = {name: Arbiter({name: 1.0}) for name in CRITERIA}
    for path in sorted(ARBITERS.glob("*.yaml")):
        settings = _shipped(path.stem)
        if len(settings) > 1 or len(settings["criteria"]) > 1:  # not a criterion listed above
            chosen[f"arbiter={path.stem}"] = Arbiter(**settings)
    preset = {
        k: v for k, v in _shipped("discrepancy").items() if k not in ("discrepancy", "excess")
    }
    for value in excess_grid:
        chosen[f"discrepancy, excess={value:g} instead"] = Arbiter(**preset, excess=value)
    return chosen


def selections(
    images: dict[str, list[dict]], arms: list[str] | None = None, by_seed: bool = False
) -> list[tuple[str, str, int, list[dict]]]:
    """What each choice is made among: ``(label, image, seed, candidates)``.

    By default one selection per image among all its candidates (seed 0 stands for "all
    seeds"). ``arms``: only the candidates of these arms (``[selfdeblur]``: the portfolio of
    SelfDeblur seeds alone, no g). ``by_seed``: one selection per image and seed, among that
    seed's candidates and the seedless ones (g's x̄), so that a portfolio of S seeds per arm
    gives S draws of the one-seed portfolio, paired with the baseline on the same seed."""
    chosen = []
    for image, candidates in sorted(images.items()):
        kept = [c for c in candidates if arms is None or c["arm"] in arms]
        seeds = sorted({c["seed"] for c in kept if c["seed"] is not None})
        if by_seed and seeds:
            for seed in seeds:
                draw = [c for c in kept if c["seed"] in (seed, None)]
                chosen.append((f"{image}/seed{seed}", image, seed, draw))
        else:
            chosen.append((image, image, 0, kept))
    return [entry for entry in chosen if len(entry[3]) > 1]


def against_baseline(rows, picked: dict[str, list[float]], baseline: str) -> dict:
    """Each choice's pick against the ``baseline`` arm on the same image and seed (each row's
    ``reference``: the baseline's PSNRs there, whether or not it was among the candidates),
    paired by weakdeblur.paired (per image the mean over its draws; a selection among several
    seeds of the baseline counts against their mean): the difference with a bootstrap 95 % interval
    over images, wins and losses, and the worst shortfall of an image's mean pick below the
    median of its baseline seeds."""
    reference: dict[tuple[str, int], float] = {}
    seeds_of: dict[str, list[float]] = {}
    for row in rows:
        psnrs = row["reference"]
        if psnrs:
            reference[row["image"], row["seed"]] = statistics.fmean(psnrs)
            seeds_of.setdefault(row["image"], []).extend(psnrs)
    if not reference:
        arms = sorted({arm for row in rows for arm in row["arms"]})
        print(f"\nno candidate of arm {baseline!r} (arms: {', '.join(arms)}): no paired comparison")
        return {}
    if len(seeds_of) < 2:
        print(f"\none image with a {baseline} candidate: the paired comparison needs two or more")
        return {}
    pooled = any(len(row["reference"]) > 1 for row in rows)
    what = "the mean of its seeds in each selection" if pooled else "the same image and seed"
    print(
        f"\npaired against {baseline}, {what} ({len(seeds_of)} images, {len(reference)} draws); "
        f"images and draws won/lost; worst: the lowest image mean pick minus the median of its "
        f"{baseline} seeds"
    )
    print(
        f"{'choice':<34} {'mean diff':>10} {'95% interval':>18} {'images':>9} {'draws':>9} "
        f"{'worst':>7}"
    )
    found = {}
    for key, values in picked.items():
        chosen = {
            (row["image"], row["seed"]): psnr
            for row, psnr in zip(rows, values, strict=True)
            if (row["image"], row["seed"]) in reference
        }
        result = compare(reference, chosen, names=(baseline, key))
        worst = min(
            item.candidate - statistics.median(seeds_of[item.image]) for item in result.images
        )
        low, high = result.interval
        found[key] = {
            "difference": result.difference,
            "interval": [low, high],
            "wins": result.wins,
            "losses": result.losses,
            "draws": result.draws,
            "draw_wins": result.draw_wins,
            "draw_losses": result.draw_losses,
            "worst_below_median": worst,
        }
        interval = f"[{low:+.2f}, {high:+.2f}]"
        print(
            f"{key:<34} {result.difference:+10.2f} {interval:>18} "
            f"{result.wins:>4}/{result.losses:<4} {result.draw_wins:>4}/{result.draw_losses:<4} "
            f"{worst:+7.2f}"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("runs", nargs="*", type=Path, help="run folders, one candidate each")
    parser.add_argument("--portfolio", type=Path, help="a +exp=portfolio run folder")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--baseline", help="the arm every choice is paired against (default: selfdeblur)"
    )
    parser.add_argument(
        "--per-image",
        action="store_true",
        help="print each image's candidates: PSNR, residual over σ̂² and its excess over the best fit",
    )
    parser.add_argument(
        "--excess-grid",
        type=numbers,
        default=[],
        help="comma-separated excess gates (σ̂² above the best fit) to try in place of the "
        "discrepancy preset's absolute gate, e.g. 0.5,1,2,4 (calibration on data=shake only)",
    )
    parser.add_argument(
        "--arms",
        type=names,
        help="comma-separated arms: choose among these arms' candidates only (selfdeblur: the "
        "portfolio of SelfDeblur seeds alone)",
    )
    parser.add_argument(
        "--by-seed",
        action="store_true",
        help="one choice per image and seed, among that seed's candidates and g's x̄, paired "
        "with the baseline on the same seed (a portfolio of S seeds gives S one-seed draws)",
    )
    arguments = parser.parse_args(argv)
    check_folders(parser, arguments.runs, arguments.portfolio)
    images = load_portfolio(arguments.portfolio) if arguments.portfolio else {}
    if arguments.runs:
        images.update(load_runs(arguments.runs))
    present = sorted({c["arm"] for candidates in images.values() for c in candidates})
    for arm in [*(arguments.arms or []), *([arguments.baseline] if arguments.baseline else [])]:
        if images and arm not in present:
            parser.error(f"no candidate of arm {arm!r} in these runs; arms: {', '.join(present)}")
    baseline = arguments.baseline or "selfdeblur"
    chosen_among = selections(images, arguments.arms, arguments.by_seed)
    if not chosen_among:
        why = " (--by-seed: one candidate per arm and seed, and g's x̄)" if arguments.by_seed else ""
        parser.error(f"no image has two or more finished candidates to choose among{why}")
    choices = arbiters(arguments.excess_grid)
    every_criterion = Arbiter(dict.fromkeys(CRITERIA, 1.0))
    per_arbiter: dict[str, dict[str, list]] = {}
    fixed: dict[str, list[float]] = {}
    rows = []
    for name, image, seed, candidates in chosen_among:
        psnrs = [c["psnr"] for c in candidates]
        best = max(psnrs)
        picks = [Candidate(c["name"], c["group"], c["x"], c["k"], c["arm"]) for c in candidates]
        row = {
            "selection": name,
            "image": image,
            "seed": seed,
            "candidates": [c["name"] for c in candidates],
            "arms": [c["arm"] for c in candidates],
            "psnr": psnrs,
            "reference": [  # the baseline arm on this image (this seed with --by-seed)
                c["psnr"]
                for c in images[image]
                if c["arm"] == baseline and (not arguments.by_seed or c["seed"] in (seed, None))
            ],
        }
        scores = every_criterion.scores(candidates[0]["y"], picks)  # each criterion once
        for label, arbiter in choices.items():
            choice = arbiter.decide({key: scores[key] for key in arbiter.needs}, picks)
            total, pick = choice.total, choice.index
            entry = per_arbiter.setdefault(label, {"hit": [], "picked": [], "rho": []})
            entry["hit"].append(psnrs[pick] == best)
            entry["picked"].append(psnrs[pick])
            gated = arbiter.discrepancy is not None or arbiter.excess is not None or arbiter.prefer
            rho = None if gated else spearman(total, psnrs)  # a gated choice is no ranking
            if rho is not None:
                entry["rho"].append(rho)
            row[label] = total
        for c in candidates:  # per draw an arm has one candidate: "always that arm"
            fixed.setdefault(c["arm"] if arguments.by_seed else c["name"], []).append(c["psnr"])
        rows.append(row)
        if arguments.per_image:
            ratios = scores["residual_to_noise"]
            print(
                f"{name}: "
                + ", ".join(
                    f"{c['name']} {p:.2f} dB (residual {r:.2f} σ̂², +{r - min(ratios):.2f})"
                    for c, p, r in zip(candidates, psnrs, ratios, strict=True)
                )
            )
    mean_candidate = statistics.fmean(statistics.fmean(r["psnr"]) for r in rows)
    ceiling = statistics.fmean(max(r["psnr"]) for r in rows)
    sources = len({row["image"] for row in rows})
    arms = sorted({arm for row in rows for arm in row["arms"]})
    print(f"{len(rows)} selections on {sources} images; candidates of the arms {', '.join(arms)}")
    print(f"mean candidate {mean_candidate:.2f} dB, best per selection (ceiling) {ceiling:.2f} dB")
    print(f"{'choice':<34} {'accuracy':>9} {'picked dB':>10} {'rank corr':>10}")
    summary = {}
    for key, entry in per_arbiter.items():
        accuracy = statistics.fmean(entry["hit"])
        picked = statistics.fmean(entry["picked"])
        rho = statistics.fmean(entry["rho"]) if entry["rho"] else None
        summary[key] = {"accuracy": accuracy, "picked_psnr": picked, "spearman": rho}
        rho_text = f"{rho:10.2f}" if rho is not None else f"{'-':>10}"
        print(f"{key:<34} {accuracy:9.2f} {picked:10.2f} {rho_text}")
    always = {  # a candidate every image has: always choosing it
        f"always {name}": values
        for name, values in sorted(fixed.items())
        if len(values) == len(rows)
    }
    for label, values in always.items():
        print(f"{label:<34} {'':>9} {statistics.fmean(values):10.2f}")
    picked = {key: entry["picked"] for key, entry in per_arbiter.items()}
    summary["paired"] = against_baseline(rows, {**picked, **always}, baseline)
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(
            json.dumps(
                {
                    "mean_candidate": mean_candidate,
                    "ceiling": ceiling,
                    "criteria": summary,
                    "images": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
