r"""A portfolio: several candidate runs of one image, and an arbiter that picks one.

Candidates are seeds × arms, where an arm is an experiment preset (``selfdeblur``,
``weak_rec_es``, ...) with its own solver, and, where an arm's supervisor g estimates a kernel,
g's own estimate (x̄, k̄) as one more candidate (``xbar-<arm>``). Each candidate runs through
the same one-image pipeline as a plain run (:class:`~weakdeblur.runtime.pipeline.ImagePipeline`) and
keeps its artefacts (x, k, ŷ, history, metrics) in ``<image>/candidates/<arm>-seed<s>/``;
a candidate finished with the same arm configuration and seed is reused when the portfolio is
run again (resume per candidate). The arbiter (:class:`~weakdeblur.arbiter.Arbiter`) scores
every candidate from the blurry image alone and the lowest score wins; the winner becomes the
image's result, and the record says which candidate won, by which criteria, with every
candidate's scores (and, where a ground truth exists, each candidate's PSNR, for studies only:
the arbiter never reads it).

The candidates run one after the other, except that with ``solver.batch_size`` = B > 1 they
are fitted B at a time as one batch (:class:`~weakdeblur.batched.CandidateBatches`): the seeds
of an arm, and arms whose solvers can share a batch (one architecture and optimiser; each
candidate keeps its own arm's losses, supervisor and stopping rule). The candidates are those
of one at a time up to float round-off; what pays on a GPU. Nothing here reads Hydra or
W&B: the entry point composes the arms and gives each its pipeline.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from weakdeblur.arbiter import Arbiter, Candidate
from weakdeblur.batched import CandidateBatches
from weakdeblur.colour import ColourView
from weakdeblur.data.sample import Sample
from weakdeblur.physics import blur_same
from weakdeblur.runtime.pipeline import ImagePipeline
from weakdeblur.runtime.resume import SUPERSEDED_DIR, completed_record, fingerprint
from weakdeblur.runtime.tracking import METRICS_FILE, Tracker, write_json
from weakdeblur.stopping import PrunedStop
from weakdeblur.types import Result

log = logging.getLogger("weakdeblur")

CANDIDATES_DIR = "candidates"
CANDIDATE_TENSORS = "candidate.pt"  # the candidate's estimate in the solver's view, for resuming
# what stays with a candidate; the rest of the winner's record (its scores against the ground
# truth, its stopping diagnosis, ...) becomes the image's
CANDIDATE_KEYS = frozenset(
    {"name", "arm", "seed", "experiment", "config_fingerprint", "environment", "resumed"}
    | {"status", "message", "iterations", "seconds", "rung_scores", "pruned_at"}
)


@dataclass
class Arm:
    """One experiment preset of a portfolio: its name, the pipeline built from its configuration,
    the fingerprint of that configuration, and ``supervisor``, a key naming its supervisor g
    (``None`` for an arm without one): candidates that share g share one kernel vote."""

    name: str
    pipeline: ImagePipeline
    fingerprint: str
    supervisor: str | None = None


@dataclass
class Outcome:
    """One candidate of one image: its estimate (solver's view) and its record."""

    candidate: Candidate
    record: dict[str, Any]
    result: Result


def save_candidate(folder: Path, result: Result) -> None:
    """The candidate's tensors (x at y's size, k, ŷ, x̄, k̄) and history, written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{CANDIDATE_TENSORS}.{os.getpid()}.tmp"
    torch.save(
        {
            "image": result.image,
            "kernel": result.kernel,
            "blurred": result.blurred,
            "supervised": result.supervised,
            "supervised_kernel": result.supervised_kernel,
            "history": result.history,
        },
        temporary,
    )
    os.replace(temporary, folder / CANDIDATE_TENSORS)


def load_candidate(folder: Path, name: str, record: dict[str, Any]) -> Result | None:
    """The stored candidate as a result, or ``None`` when its tensors are missing or unreadable."""
    try:
        stored = torch.load(folder / CANDIDATE_TENSORS, weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return None
    return Result(
        name=name,
        image=stored["image"],
        kernel=stored["kernel"],
        blurred=stored["blurred"],
        iterations=int(record.get("iterations", 0)),
        returned_iteration=int(record.get("returned_iteration", 0)),
        seconds=float(record.get("seconds", 0.0)),
        history=stored["history"],
        stopped_early=bool(record.get("stopped_early", False)),
        supervised=stored["supervised"],
        supervised_kernel=stored["supervised_kernel"],
    )


@dataclass
class Pruning:
    """Asynchronous successive halving (ASHA; Li et al., MLSys 2020) over one image's
    candidates, in the order they run: at each rung (a fraction of the arm's budget) a candidate
    goes on only if the arbiter's score of its current (x, k) ranks among the best ``keep`` of
    all candidates scored at that rung so far, itself included (the first always goes on).
    Needs an arbiter whose criteria score a candidate alone (not ``kernel_disagreement``)."""

    fractions: list[float]
    keep: float = 0.5

    def __post_init__(self) -> None:
        self.population: dict[int, list[dict[str, float]]] = {}

    def rungs(self, budget: int) -> list[int]:
        return [max(1, round(fraction * budget)) for fraction in self.fractions]

    def judge(self, arbiter: Arbiter, blurry: torch.Tensor, budget: int, scored: dict):
        """The judge of one candidate (for :class:`~weakdeblur.stopping.PrunedStop`): True
        to give it up; its rung scores go into ``scored`` (rung index -> criterion -> score)."""
        rungs = self.rungs(budget)

        def judge(check) -> bool:
            rung = rungs.index(check.iteration)
            mine = arbiter.scores(blurry, [Candidate("", "", check.image, check.kernel)])
            mine = {name: values[0] for name, values in mine.items()}
            scored[str(rung)] = mine
            return self.gives_up(arbiter, rung, mine)

        return judge

    def gives_up(self, arbiter: Arbiter, rung: int, mine: dict[str, float]) -> bool:
        """Whether a candidate with the criterion scores ``mine`` at rung ``rung`` falls outside
        the best ``keep`` of the candidates scored there so far (itself included, and it joins
        them either way). With ``keep`` = 1 nothing is given up: the rung scores are recorded,
        and experiments/portfolio/pruning.py replays any ``keep`` from them."""
        everyone = [*self.population.get(rung, []), mine]
        total = arbiter.combine({name: [s[name] for s in everyone] for name in mine})
        better = sum(value < total[-1] for value in total[:-1])
        self.population.setdefault(rung, []).append(mine)
        return better >= max(1, math.ceil(self.keep * len(everyone)))

    def remember(self, scored: dict) -> None:
        """A reused candidate's rung scores join the population."""
        for rung, scores in scored.items():
            self.population.setdefault(int(rung), []).append(dict(scores))


@dataclass
class Portfolio:
    """Run ``arms`` × ``seeds`` (and g's own estimate where ``supervisor_candidate``) on one
    image, under ``output_dir``, and let ``arbiter`` choose."""

    arms: list[Arm]
    seeds: list[int]
    arbiter: Arbiter
    output_dir: Path
    trackers: Tracker  # the image's own record and artefacts (the winner's)
    supervisor_candidate: bool = False
    resume: bool = True
    pruning: Pruning | None = None

    def prunes(self, arm: Arm) -> bool:
        """Whether ``arm``'s candidates face the rungs: under pruning, all but the arms the
        arbiter prefers (their candidates always run to the end, as the gates judge them only
        at the end)."""
        return self.pruning is not None and arm.name not in self.arbiter.prefer

    def reclaim(self, name: str) -> None:
        """Bring back the candidates of an image whose earlier result was set aside (another
        arbiter, say: ``<output>/.superseded/<fingerprint>/<image>/candidates/``): each is reused
        only if its own fingerprint still matches, so moving them back is always safe."""
        target = self.output_dir / name / CANDIDATES_DIR
        for old in sorted((self.output_dir / SUPERSEDED_DIR).glob(f"*/{name}/{CANDIDATES_DIR}/*")):
            if old.is_dir() and not (target / old.name).exists():
                target.mkdir(parents=True, exist_ok=True)
                shutil.move(str(old), str(target / old.name))

    def stored(self, arm: Arm, seed: int, sample: Sample):
        """A candidate's name, folder and settings fingerprint, and its finished record when it
        finished with these settings (else ``None``; its tensors are not read here)."""
        name = f"{sample.name}/{CANDIDATES_DIR}/{arm.name}-seed{seed}"
        folder = self.output_dir / name
        settings: dict[str, Any] = {"arm": arm.fingerprint, "seed": seed}
        if self.prunes(arm):  # a pruned candidate depends on the ones before it
            settings["pruning"] = [
                self.pruning.fractions,
                self.pruning.keep,
                self.arbiter.criteria,
                *([self.arbiter.prefer] if self.arbiter.prefer else []),
            ]
        key = fingerprint(settings)
        done = completed_record(folder, key, quiet=True) if self.resume else None
        return name, folder, key, done

    def batches(self, sample: Sample) -> dict[str, Callable[..., Result]]:
        """Each arm's solve hook that fits the image's candidates still to run in batches of
        its ``solver.batch_size`` (:class:`~weakdeblur.batched.CandidateBatches`); none for an
        arm with ``batch_size`` 1 or under pruning (its candidates are judged at the rungs
        against the ones before them), and none at all when fewer than two candidates are
        pending. Candidates whose arms cannot share a batch run in batches of their own."""
        pending = [
            (arm.name, arm.pipeline.solver, seed)
            for arm in self.arms
            if arm.pipeline.solver.speed.batch_size > 1 and not self.prunes(arm)
            for seed in self.seeds
            if self.stored(arm, seed, sample)[3] is None
        ]
        if len(pending) < 2:
            return {}
        batches = CandidateBatches(pending)
        return {name: batches.solve_for(name) for name in dict.fromkeys(a for a, _, _ in pending)}

    def run_candidate(self, arm: Arm, seed: int, sample: Sample, base: dict) -> Outcome | None:
        """One candidate, reused from its folder when it finished with the same settings."""
        label = f"{arm.name}-seed{seed}"
        name, folder, key, done = self.stored(arm, seed, sample)
        result = load_candidate(folder, name, done) if done is not None else None
        if result is not None:
            log.info("%s: candidate %s complete, reused", sample.name, label)
            record = {**done, "resumed": True}
            if self.pruning is not None:
                self.pruning.remember(record.get("rung_scores", {}))
        else:
            record = {
                **base,
                "name": name,
                "arm": arm.name,
                "seed": seed,
                "config_fingerprint": key,
            }
            record, result = self.solve_candidate(arm, replace(sample, name=name), seed, record)
            if record.get("status") == "ok":
                save_candidate(folder, result)
                write_json(folder / METRICS_FILE, record)  # with its rung scores, if pruned
        if record.get("status") != "ok":
            return None
        group = f"g:{arm.supervisor}" if arm.supervisor is not None else label
        return Outcome(
            Candidate(label, group, result.image, result.kernel, arm.name), record, result
        )

    def solve_candidate(
        self, arm: Arm, sample: Sample, seed: int, record: dict[str, Any]
    ) -> tuple[dict[str, Any], Result]:
        """The arm's pipeline on ``sample``; under pruning, its stopping rule wrapped so that
        the rungs' judge can give the candidate up."""
        if not self.prunes(arm):
            return arm.pipeline.run(sample, seed, record)
        solver = arm.pipeline.solver
        budget = solver.optim.iterations
        solved = ColourView.of(sample, arm.pipeline.color).solve
        scored: dict[str, dict[str, float]] = {}
        judge = self.pruning.judge(self.arbiter, solved.blurry, budget, scored)
        original = solver.stopping
        solver.stopping = PrunedStop(original, self.pruning.rungs(budget), judge)
        try:
            record, result = arm.pipeline.run(sample, seed, record)
            pruned_at = solver.stopping.pruned_at
        finally:
            solver.stopping = original
        record["rung_scores"] = scored
        if pruned_at is not None:
            record["pruned_at"] = pruned_at
            log.info(
                "%s: pruned at iteration %d of %d (outside the best %g at its rung)",
                record["name"],
                pruned_at,
                budget,
                self.pruning.keep,
            )
        return record, result

    def supervisor_outcomes(self, sample: Sample, outcomes: list[Outcome]) -> list[Outcome]:
        """g's own estimate (x̄, k̄) as a candidate, once per supervisor that gives a kernel."""
        found: dict[str, Outcome] = {}
        arms = {arm.name: arm for arm in self.arms}
        for outcome in outcomes:
            arm = arms[outcome.record["arm"]]
            result = outcome.result
            if arm.supervisor is None or arm.supervisor in found:
                continue
            if result.supervised is None or result.supervised_kernel is None:
                continue
            image, kernel = result.supervised, result.supervised_kernel
            label = f"xbar-{arm.name}"
            record = {
                "name": f"{sample.name}/{CANDIDATES_DIR}/{label}",
                "arm": label,
                "status": "ok",
                "iterations": 0,
                "seconds": 0.0,
                **arm.pipeline.evaluator.final(sample, image, kernel),
            }
            blurred = blur_same(image, kernel.to(image.dtype), border="replicate")
            supervised = Result(record["name"], image, kernel, blurred, 0, 0)
            found[arm.supervisor] = Outcome(
                Candidate(label, f"g:{arm.supervisor}", image, kernel, label), record, supervised
            )
        return list(found.values())

    def run(self, sample: Sample, base: dict[str, Any]) -> dict[str, Any]:
        """Every candidate of the loaded ``sample``, the arbiter's choice, the winner written as
        the image's result; return the image's record."""
        view = ColourView.of(sample, self.arms[0].pipeline.color)
        self.reclaim(sample.name)
        record, result = self.choose(sample, view.solve, base)
        if result is None:
            folder = self.output_dir / sample.name
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / METRICS_FILE, record)
            return record
        self.trackers.start_image(view.show, record)
        self.trackers.end_image(view.show, view.result(result), record)
        return record

    def choose(
        self, sample: Sample, solved: Sample, base: dict[str, Any]
    ) -> tuple[dict[str, Any], Result | None]:
        """Run the candidates of ``sample`` and choose among them in the solver's view
        (``solved``); the image's record and the winner's result (``None`` when no candidate
        finished)."""
        if self.pruning is not None:
            self.pruning.population = {}  # rungs compare the candidates of one image
        outcomes = []
        hooks = self.batches(sample)
        for arm in self.arms:
            pipeline = arm.pipeline
            arm.pipeline = replace(pipeline, solve=hooks.get(arm.name, pipeline.solve))
            try:
                outcomes += [self.run_candidate(arm, seed, sample, base) for seed in self.seeds]
            finally:
                arm.pipeline = pipeline
        outcomes = [outcome for outcome in outcomes if outcome is not None]
        if self.supervisor_candidate:
            outcomes += self.supervisor_outcomes(solved, outcomes)
        spent = {
            "iterations": sum(int(o.record.get("iterations") or 0) for o in outcomes),
            "seconds": sum(float(o.record.get("seconds") or 0.0) for o in outcomes),
        }
        if not outcomes:
            message = "no candidate finished"
            log.error("%s: %s", sample.name, message)
            return {**base, "status": "failed", "message": message, **spent}, None
        contenders = [o for o in outcomes if o.record.get("pruned_at") is None]
        choice = self.arbiter.choose(solved.blurry, [o.candidate for o in contenders])
        winner = contenders[choice.index]
        position = {id(o): i for i, o in enumerate(contenders)}
        candidates = []
        for o in outcomes:
            entry = {
                "name": o.candidate.name,
                "arm": o.record.get("arm"),
                "seed": o.record.get("seed"),
                "group": o.candidate.group,
                "iterations": o.record.get("iterations"),
                "seconds": o.record.get("seconds"),
                **({"psnr": o.record["psnr"]} if "psnr" in o.record else {}),
            }
            if id(o) in position:
                i = position[id(o)]
                entry["scores"] = {key: values[i] for key, values in choice.scores.items()}
                entry["total"] = choice.total[i]
            else:
                entry["pruned_at"] = o.record["pruned_at"]
            candidates.append(entry)
        record = {
            **base,
            **{k: v for k, v in winner.record.items() if k not in CANDIDATE_KEYS},
            "status": "ok",
            "message": "",
            **spent,
            "kernel_size": list(solved.kernel_size),
            "image_size": list(solved.blurry.shape[-2:]),
            "portfolio": {
                "chosen": winner.candidate.name,
                "chosen_arm": winner.record.get("arm"),
                "chosen_seed": winner.record.get("seed"),  # the image's `seed` is the first one
                "criteria": dict(self.arbiter.criteria),
                **({"pruning": self.pruning_summary(outcomes)} if self.pruning is not None else {}),
                "reason": choice.reason,
                "candidates": candidates,
            },
        }
        log.info("%s: the arbiter chose %s (%s)", sample.name, winner.candidate.name, choice.reason)
        return record, replace(winner.result, name=sample.name, **spent)

    def pruning_summary(self, outcomes: list[Outcome]) -> dict[str, Any]:
        """The image's pruning: the rungs, ``keep``, the candidates given up and the
        iterations their budgets had left when they stopped (each candidate's own
        ``iterations_saved``)."""
        pruned = [o for o in outcomes if o.record.get("pruned_at") is not None]
        return {
            "at": self.pruning.fractions,
            "keep": self.pruning.keep,
            "pruned": [o.candidate.name for o in pruned],
            "iterations_saved": sum(int(o.record["iterations_saved"]) for o in pruned),
        }

    def close(self) -> None:
        """Close every arm's trackers (the image's own belong to the caller)."""
        for arm in self.arms:
            arm.pipeline.trackers.close()
