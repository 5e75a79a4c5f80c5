"""Portfolio: candidates per image (arms × seeds, and g's own estimate) and the arbiter's choice."""

import json
import subprocess
import sys
from pathlib import Path
from runpy import run_path

import pytest
import torch
from conftest import CONF, PROJECT
from hydra import compose, initialize_config_dir

from weakdeblur.arbiter import Arbiter, Candidate, _ranks
from weakdeblur.data.sample import Sample
from weakdeblur.evaluation import Evaluator
from weakdeblur.metrics import LPIPSMetric
from weakdeblur.physics import blur_same
from weakdeblur.run import build_solver
from weakdeblur.runtime.pipeline import ImagePipeline
from weakdeblur.runtime.portfolio import CANDIDATE_TENSORS, Arm, Portfolio, Pruning
from weakdeblur.runtime.tracking import LocalArtifacts, NullTracker
from weakdeblur.stopping import Check, PrunedStop, StoppingPolicy

TINY = [
    "generator=small",
    "optim.iterations=4",
    "optim.log_every=2",
    "optim.snapshot_every=0",
    "logger=none",
    "progress=false",
    "metrics.lpips=false",
    "metrics.error_ratio=false",
    "device=cpu",
]


def synthetic_sample(size: int = 40, kernel_size: int = 5) -> Sample:
    generator = torch.Generator().manual_seed(3)
    sharp = torch.rand(1, 1, size, size, generator=generator)
    sharp = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1)  # some structure
    kernel = torch.zeros(1, 1, kernel_size, kernel_size)
    kernel[0, 0, kernel_size // 2, :] = 1 / kernel_size  # horizontal motion
    blurry = blur_same(sharp, kernel, border="replicate")
    return Sample("synthetic", blurry, (kernel_size, kernel_size), sharp=sharp, kernel=kernel)


# -- the arbiter -------------------------------------------------------------------------------


def test_ranks_share_ties():
    assert _ranks([3.0, 1.0, 3.0, 0.5]) == [2.5, 1.0, 2.5, 0.0]


def test_arbiter_refuses_unknown_or_empty_criteria():
    with pytest.raises(ValueError, match="unknown arbiter criterion 'sharpness'.*data_fit"):
        Arbiter({"sharpness": 1.0})
    with pytest.raises(ValueError, match="at least one criterion"):
        Arbiter({})
    with pytest.raises(ValueError, match="weight > 0"):
        Arbiter({"data_fit": 0.0})


def test_arbiter_picks_the_true_kernel_over_wrong_ones_by_cross_validation():
    sample = synthetic_sample(size=48, kernel_size=7)
    true = sample.kernel
    delta = torch.zeros_like(true)
    delta[0, 0, 3, 3] = 1.0
    vertical = true.transpose(-1, -2).contiguous()
    candidates = [
        Candidate("delta", "a", sample.blurry, delta),
        Candidate("vertical", "b", sample.sharp, vertical),
        Candidate("true", "c", sample.sharp, true),
    ]
    choice = Arbiter({"cross_validated_fit": 1.0}).choose(sample.blurry, candidates)
    assert choice.index == 2
    assert choice.total == choice.scores["cross_validated_fit"]
    assert "cross_validated_fit lowest" in choice.reason
    # the plain data fit cannot tell: (y, delta) fits y exactly
    fit = Arbiter({"data_fit": 1.0}).choose(sample.blurry, candidates)
    assert fit.index == 0 and fit.scores["data_fit"][0] < 1e-12


def test_combined_arbiter_sums_weighted_ranks():
    sample = synthetic_sample()
    candidates = [
        Candidate(name, name, sample.sharp, sample.kernel) for name in ("first", "second")
    ]
    choice = Arbiter({"data_fit": 1.0, "kernel_disagreement": 2.0}).choose(
        sample.blurry, candidates
    )
    # identical candidates: every rank ties, so does the total; the earlier one wins
    assert choice.total == [1.5, 1.5] and choice.index == 0


# -- the portfolio, without Hydra's entry point -------------------------------------------------


def arm(name: str, output_dir: Path, *overrides: str) -> Arm:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"+exp={name}", *TINY, *overrides])
    solver = build_solver(cfg)
    evaluator = Evaluator(cut=2, max_shift=1, lpips=LPIPSMetric(False), error_ratio=False)
    pipeline = ImagePipeline(solver, evaluator, LocalArtifacts(output_dir))
    supervisor = cfg.supervisor.get("_target_")
    return Arm(name, pipeline, f"fingerprint-{name}", supervisor)


def test_portfolio_runs_every_candidate_keeps_them_and_reuses_them(tmp_path: Path):
    sample = synthetic_sample()
    arms = [arm("selfdeblur", tmp_path), arm("weak_rec_es", tmp_path, "supervisor.alternations=1")]
    portfolio = Portfolio(
        arms,
        [0, 1],
        Arbiter({"cross_validated_fit": 1.0}),
        tmp_path,
        NullTracker(),
        supervisor_candidate=True,
    )
    record = portfolio.run(sample, {"name": sample.name})
    chosen = record["portfolio"]["chosen"]
    names = [c["name"] for c in record["portfolio"]["candidates"]]
    # 2 arms x 2 seeds, and the map g's own (x̄, k̄)
    assert names == [
        "selfdeblur-seed0",
        "selfdeblur-seed1",
        "weak_rec_es-seed0",
        "weak_rec_es-seed1",
        "xbar-weak_rec_es",
    ]
    assert record["status"] == "ok" and chosen in names
    totals = [c["total"] for c in record["portfolio"]["candidates"]]
    assert totals[names.index(chosen)] == min(totals)
    # the study's view: each candidate's PSNR is kept, the image's PSNR is the winner's
    psnrs = {c["name"]: c["psnr"] for c in record["portfolio"]["candidates"]}
    assert record["psnr"] == pytest.approx(psnrs[chosen])
    # g's candidates share one kernel vote group
    groups = {c["name"]: c["group"] for c in record["portfolio"]["candidates"]}
    assert groups["weak_rec_es-seed0"] == groups["xbar-weak_rec_es"]
    assert groups["selfdeblur-seed0"] != groups["selfdeblur-seed1"]
    # the cost is every candidate's iterations (x̄ costs none here)
    assert record["iterations"] == 4 * 4
    for label in names[:4]:
        folder = tmp_path / sample.name / "candidates" / label
        assert (folder / CANDIDATE_TENSORS).is_file() and (folder / "metrics.json").is_file()
        assert json.loads((folder / "metrics.json").read_text())["status"] == "ok"
    # a second pass reuses every finished candidate and chooses the same
    again = portfolio.run(sample, {"name": sample.name})
    assert again["portfolio"]["chosen"] == chosen
    assert again["portfolio"]["candidates"] == record["portfolio"]["candidates"]


def batch_groups(monkeypatch, arm_of: dict[int, str]) -> list[list[tuple[str, int]]]:
    """The batches BatchedSolver is asked to fit, as (arm, seed) lists (``arm_of``: solver id
    to arm name), recorded from now on."""
    from weakdeblur import batched

    groups: list[list[tuple[str, int]]] = []
    original = batched.BatchedSolver.run

    def spy(self, samples, seeds=0, **kwargs):
        pairs = zip(kwargs["solvers"], seeds, strict=True)
        groups.append([(arm_of[id(solver)], seed) for solver, seed in pairs])
        return original(self, samples, seeds, **kwargs)

    monkeypatch.setattr(batched.BatchedSolver, "run", spy)
    return groups


def test_batched_candidates_equal_one_at_a_time_runs(tmp_path, monkeypatch, request):
    """solver.batch_size=2: the image's pending candidates are fitted two at a time, across
    arms (selfdeblur seeds 0 and 1; selfdeblur 2 with weak_rec_es 0, each with its own losses,
    supervisor and stopping rule; weak_rec_es 1 and 2), and give the candidates of
    one-at-a-time runs up to float round-off; a resumed portfolio batches only what is left."""
    import shutil

    arm_of: dict[int, str] = {}
    groups = batch_groups(monkeypatch, arm_of)
    # float64: float32 Adam turns the summation-order round-off of a batch into ~1e-2 within a
    # few iterations (tests/test_batched.py); in float64 the two agree to 1e-6
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    request.addfinalizer(lambda: torch.set_default_dtype(previous))
    sample = synthetic_sample()
    records = {}
    for size in (1, 2):
        out = tmp_path / f"batch{size}"
        weak = ("supervisor.alternations=1", f"solver.batch_size={size}")
        arms = [
            arm("selfdeblur", out, f"solver.batch_size={size}"),
            arm("weak_rec_es", out, *weak),
        ]
        arm_of.update({id(a.pipeline.solver): a.name for a in arms})
        portfolio = Portfolio(arms, [0, 1, 2], Arbiter({"data_fit": 1.0}), out, NullTracker())
        records[size] = portfolio.run(sample, {"name": sample.name})
    sd, weak = "selfdeblur", "weak_rec_es"
    # batch_size=1 never batches
    assert groups == [[(sd, 0), (sd, 1)], [(sd, 2), (weak, 0)], [(weak, 1), (weak, 2)]]
    for one, two in zip(*(records[s]["portfolio"]["candidates"] for s in (1, 2)), strict=True):
        assert one["name"] == two["name"] and one["iterations"] == two["iterations"] == 4
        folders = [
            tmp_path / f"batch{s}" / sample.name / "candidates" / one["name"] for s in (1, 2)
        ]
        alone, together = (torch.load(f / CANDIDATE_TENSORS, weights_only=True) for f in folders)
        torch.testing.assert_close(together["image"], alone["image"], atol=1e-6, rtol=0)
        torch.testing.assert_close(together["kernel"], alone["kernel"], atol=1e-6, rtol=0)
        assert one["psnr"] == pytest.approx(two["psnr"], abs=1e-4)
    # the supervised arm's losses really entered its candidates: they differ from SelfDeblur's
    stored = {
        name: torch.load(
            tmp_path / "batch2" / sample.name / "candidates" / name / CANDIDATE_TENSORS,
            weights_only=True,
        )
        for name in ("selfdeblur-seed0", "weak_rec_es-seed0")
    }
    assert (
        stored["selfdeblur-seed0"]["image"] - stored["weak_rec_es-seed0"]["image"]
    ).abs().max() > 1e-3
    # resumed with one candidate gone: it runs alone, the others are reused
    shutil.rmtree(tmp_path / "batch2" / sample.name / "candidates" / "selfdeblur-seed1")
    groups.clear()
    again = portfolio.run(sample, {"name": sample.name})
    assert groups == [] and again["portfolio"]["chosen"] == records[2]["portfolio"]["chosen"]


def test_arms_that_cannot_share_a_batch_run_apart(tmp_path, monkeypatch):
    """Another optimiser or another network keeps an arm out of the others' batches (said by
    batchable): its candidates run in batches of their own, and the portfolio still chooses."""
    from dataclasses import replace

    from weakdeblur.batched import batchable

    sample = synthetic_sample()
    base = arm("selfdeblur", tmp_path, "solver.batch_size=2")
    faster = arm("selfdeblur", tmp_path, "solver.batch_size=2", "optim.lr_image=0.02")
    wider = arm("selfdeblur", tmp_path, "solver.batch_size=2", "generator.kernel.hidden=7")
    solvers = [a.pipeline.solver for a in (base, faster, wider)]
    assert batchable([solvers[0], solvers[0]], sample) is None
    assert batchable(solvers[:2]) == "their optim settings differ"
    assert batchable([solvers[0], solvers[2]]) is None  # settings alike ...
    assert batchable([solvers[0], solvers[2]], sample) == "their networks differ"  # ... nets not
    arms = [base, replace(faster, name="faster"), replace(wider, name="wider")]
    groups = batch_groups(monkeypatch, {id(a.pipeline.solver): a.name for a in arms})
    portfolio = Portfolio(arms, [0, 1], Arbiter({"data_fit": 1.0}), tmp_path, NullTracker())
    record = portfolio.run(sample, {"name": sample.name})
    assert groups == [[(a.name, 0), (a.name, 1)] for a in arms]
    assert len(record["portfolio"]["candidates"]) == 6 and record["status"] == "ok"


def test_candidates_of_a_result_set_aside_are_reused(tmp_path: Path):
    """Re-running with another arbiter sets the image's result aside (its fingerprint changed);
    its candidates come back and are not recomputed."""
    from weakdeblur.runtime.resume import SUPERSEDED_DIR, set_aside

    sample = synthetic_sample()
    arms = [arm("selfdeblur", tmp_path)]
    first = Portfolio(arms, [0, 1], Arbiter({"data_fit": 1.0}), tmp_path, NullTracker())
    first.run(sample, {"name": sample.name, "config_fingerprint": "first", "status": "ok"})
    folder = tmp_path / sample.name
    stamps = {
        label: (folder / "candidates" / label / CANDIDATE_TENSORS).stat().st_mtime_ns
        for label in ("selfdeblur-seed0", "selfdeblur-seed1")
    }
    (folder / "metrics.json").write_text(json.dumps({"status": "ok", "config_fingerprint": "a"}))
    moved = set_aside(folder)
    assert moved is not None and SUPERSEDED_DIR in str(moved)
    assert not (folder / "candidates").exists()
    second = Portfolio(arms, [0, 1], Arbiter({"cross_validated_fit": 1.0}), tmp_path, NullTracker())
    record = second.run(sample, {"name": sample.name})
    assert record["portfolio"]["criteria"] == {"cross_validated_fit": 1.0}
    for label, stamp in stamps.items():  # the same files: reused, not recomputed
        assert (folder / "candidates" / label / CANDIDATE_TENSORS).stat().st_mtime_ns == stamp
    assert not list(moved.glob("candidates/*"))  # moved back, not copied


def test_portfolio_redoes_a_candidate_whose_settings_changed(tmp_path: Path):
    sample = synthetic_sample()
    first = Portfolio(
        [arm("selfdeblur", tmp_path)], [0], Arbiter({"data_fit": 1.0}), tmp_path, NullTracker()
    )
    first.run(sample, {"name": sample.name})
    folder = tmp_path / sample.name / "candidates" / "selfdeblur-seed0"
    before = json.loads((folder / "metrics.json").read_text())["config_fingerprint"]
    changed = arm("selfdeblur", tmp_path)
    changed.fingerprint = "another configuration"
    second = Portfolio([changed], [0], Arbiter({"data_fit": 1.0}), tmp_path, NullTracker())
    second.run(sample, {"name": sample.name})
    after = json.loads((folder / "metrics.json").read_text())
    assert after["config_fingerprint"] != before and "resumed" not in after


# -- pruning ---------------------------------------------------------------------------------


class Spy(StoppingPolicy):
    check_every = 4

    def __init__(self):
        self.seen: list[int] = []

    def observe(self, check):
        self.seen.append(check.iteration)
        return False


def check_at(iteration: int) -> Check:
    image = torch.zeros(1, 1, 8, 8)
    return Check(iteration, 12, image, torch.ones(1, 1, 3, 3) / 9, image)


def test_pruned_stop_asks_the_judge_at_its_rungs_only_and_keeps_the_inner_cadence():
    inner, asked = Spy(), []

    def judge(check):
        asked.append(check.iteration)
        return check.iteration == 6

    policy = PrunedStop(inner, [3, 6], judge)
    policy.start(12)
    assert policy.check_every == 1  # gcd(4, 3, 6)
    stops = [policy.observe(check_at(i)) for i in range(1, 7)]
    assert stops == [False] * 5 + [True] and policy.pruned_at == 6
    assert asked == [3, 6] and inner.seen == [4]


def script_rung_scores(monkeypatch, scores: list[float]) -> None:
    """``cross_validated_fit`` at the pruning rungs gives ``scores``, in the order the rungs'
    iterates first come (the same iterate, in a second run, gets the same score); the final
    choice keeps the real criterion. The real rung scores of the synthetic seeds nearly tie
    (0.1 %), and their order flips with the thread count and the CPU."""
    from weakdeblur import arbiter as arbiter_module

    real = arbiter_module.CRITERIA["cross_validated_fit"]
    pending, given = iter(scores), {}

    def scripted(blurry, candidates):
        if candidates[0].name:  # named candidates: the final choice
            return real(blurry, candidates)
        (rung,) = candidates  # the rung's judge scores one unnamed iterate
        key = (rung.image.numpy().tobytes(), rung.kernel.numpy().tobytes())
        if key not in given:
            given[key] = next(pending)
        return [given[key]]

    monkeypatch.setitem(arbiter_module.CRITERIA, "cross_validated_fit", scripted)


def test_pruning_halves_each_rung_in_the_order_candidates_come(tmp_path: Path, monkeypatch):
    """Rung scores 1 2 3 0.5 4 (keep 0.5): the 2nd, 3rd and 5th candidate are given up."""
    script_rung_scores(monkeypatch, [1.0, 2.0, 3.0, 0.5, 4.0])
    sample = synthetic_sample()
    seeds = [0, 1, 2, 3, 4]
    portfolio = Portfolio(
        [arm("selfdeblur", tmp_path)],
        seeds,
        Arbiter({"cross_validated_fit": 1.0}),
        tmp_path,
        NullTracker(),
        pruning=Pruning([0.5], keep=0.5),
    )
    record = portfolio.run(sample, {"name": sample.name})
    listed = record["portfolio"]["candidates"]
    summary = record["portfolio"]["pruning"]
    assert (summary["at"], summary["keep"]) == ([0.5], 0.5)
    folders = tmp_path / sample.name / "candidates"
    stored = [
        json.loads((folders / f"selfdeblur-seed{s}" / "metrics.json").read_text()) for s in seeds
    ]
    rung = [entry["rung_scores"]["0"]["cross_validated_fit"] for entry in stored]
    assert rung == [1.0, 2.0, 3.0, 0.5, 4.0]
    for j, entry in enumerate(stored):  # ASHA's rule, recomputed from the stored rung scores
        better = sum(score < rung[j] for score in rung[:j])
        pruned = better >= -(-(j + 1) // 2)
        assert ("pruned_at" in entry) == pruned, (j, rung)
        assert entry["iterations"] == (2 if pruned else 4)
        assert ("pruned_at" in listed[j]) == pruned and ("total" in listed[j]) != pruned
    assert "pruned_at" not in stored[0]  # the first always goes on
    given_up = [j for j, entry in enumerate(stored) if "pruned_at" in entry]
    assert summary["pruned"] == [listed[j]["name"] for j in given_up]
    assert summary["iterations_saved"] == 2 * len(given_up)  # each stopped at 2 of 4
    assert given_up == [1, 2, 4]
    chosen = next(c for c in listed if c["name"] == record["portfolio"]["chosen"])
    assert "pruned_at" not in chosen
    assert record["iterations"] == sum(entry["iterations"] for entry in stored)
    assert record["portfolio"]["chosen_seed"] == chosen["seed"]
    assert record["portfolio"]["chosen_arm"] == "selfdeblur"
    # the report's best is of the candidates that ran to the end (the arbiter's field)
    from weakdeblur.report import ImageResult, Run, portfolio_table

    for entry in listed:  # a pruned candidate far "better" at its pruning
        entry["psnr"] = 99.0 if "pruned_at" in entry else float(entry["seed"])
    result = ImageResult(
        Run(tmp_path, "portfolio", label="p"), sample.name, tmp_path, record, [], 0
    )
    table = "\n".join(portfolio_table([result]))
    assert (
        "99.00p" in table and f"| {max(e['seed'] for e in listed if 'total' in e):.2f} |" in table
    )


def test_the_preferred_arm_is_never_pruned(tmp_path: Path):
    sample = synthetic_sample()
    portfolio = Portfolio(
        [arm("selfdeblur", tmp_path)],
        [0, 1, 2, 3],
        Arbiter({"cross_validated_fit": 1.0}, prefer=["selfdeblur"]),
        tmp_path,
        NullTracker(),
        pruning=Pruning([0.5], keep=0.25),
    )
    record = portfolio.run(sample, {"name": sample.name})
    assert all("pruned_at" not in c for c in record["portfolio"]["candidates"])
    assert record["iterations"] == 4 * 4


def test_pruning_refuses_a_criterion_that_compares_candidates():
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    from weakdeblur.runtime.preflight import PreflightError, check_settings

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for arbiter in ("combined", "kernel_agreement"):
            cfg = compose(
                config_name="config",
                overrides=["+exp=portfolio", f"arbiter={arbiter}", "portfolio.prune_at=[0.3]"],
            )
            with pytest.raises(PreflightError, match="kernel_disagreement compares candidates"):
                check_settings(cfg)
        for bad in ("portfolio.prune_at=[1.5]", "portfolio.keep=1.5"):
            cfg = compose(config_name="config", overrides=["+exp=portfolio", bad])
            with pytest.raises(PreflightError, match="portfolio"):
                check_settings(cfg)


# -- the command line --------------------------------------------------------------------------


def run_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "weakdeblur.run", *overrides],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "WANDB_MODE": "disabled"},
    )


def test_portfolio_preset_on_the_demo(tmp_path: Path, capsys):
    out = tmp_path / "out"
    overrides = [
        "+exp=portfolio",
        "portfolio.arms=[selfdeblur,weak_rec_es]",
        "portfolio.seeds=1",
        "portfolio.supervisor_candidate=true",
        "data.crop=48",
        *TINY,
        f"hydra.run.dir={out}",
        "threads=1",
    ]
    done = run_cli(*overrides, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (image,) = [folder for folder in out.iterdir() if (folder / "metrics.json").is_file()]
    metrics = json.loads((image / "metrics.json").read_text())
    chosen = metrics["portfolio"]["chosen"]
    assert chosen in {"selfdeblur-seed0", "weak_rec_es-seed0", "xbar-weak_rec_es"}
    assert (image / "x.png").is_file() and (image / "k.png").is_file()
    for label in ("selfdeblur-seed0", "weak_rec_es-seed0"):
        assert (image / "candidates" / label / "x.png").is_file()
    assert metrics["iterations"] == 2 * 4  # the portfolio's cost: every candidate's iterations
    # each arm ran its own preset: the supervised arm has g's x̄ and k̄, SelfDeblur has not
    listed = {c["name"]: c for c in metrics["portfolio"]["candidates"]}
    assert set(listed) == {"selfdeblur-seed0", "weak_rec_es-seed0", "xbar-weak_rec_es"}
    assert listed["selfdeblur-seed0"]["psnr"] != listed["weak_rec_es-seed0"]["psnr"]
    supervised = json.loads((image / "candidates/weak_rec_es-seed0/metrics.json").read_text())
    assert "supervised_psnr" in supervised and supervised["arm"] == "weak_rec_es"
    # the local report shows the candidates side by side, the choice starred
    from weakdeblur.report import report

    text = (report([out], tmp_path / "report", figures=False) / "results.md").read_text()
    section = text.split("## Portfolio candidates")[1]
    assert f"{listed[chosen]['psnr']:.2f}*" in section
    assert "The arbiter chose the best candidate on" in section
    assert "candidates" not in [
        line.split("|")[1].strip() for line in text.splitlines() if "|" in line
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] == 1 and summary["per_image"][0]["portfolio"]["chosen"] == chosen
    assert f"chose {chosen}" in done.stderr + done.stdout
    # the study's tool scores every criterion and arbiter on the run, without running anything
    selection = run_path(str(PROJECT / "experiments/arbiter/selection.py"))
    figures = tmp_path / "selection.json"
    grid = ["--excess-grid", "0.5,1e6", "--per-image"]
    assert selection["main"](["--portfolio", str(out), "--json", str(figures), *grid]) == 0
    found = json.loads(figures.read_text())
    names = found["images"][0]["candidates"]
    psnrs = [listed[name]["psnr"] for name in names]
    assert found["ceiling"] == pytest.approx(max(psnrs))
    gated = found["criteria"]["arbiter=discrepancy"]
    assert min(psnrs) <= gated["picked_psnr"] <= max(psnrs)
    assert found["images"][0]["residual_to_noise"][0] > 0
    # an excess gate no residual reaches sets nothing aside: the preferred arm is chosen
    open_gate = found["criteria"]["discrepancy, excess=1e+06 instead"]["picked_psnr"]
    assert open_gate in [p for n, p in zip(names, psnrs, strict=True) if "weak_rec_es" in n]
    per_image = capsys.readouterr().out
    assert f"{names[0]} {psnrs[0]:.2f} dB (residual" in per_image and "σ̂², +0.00)" in per_image
    # a user's slips end in one line naming the fix, before any scoring
    for argv, message in [
        ([], "give a portfolio run (--portfolio RUN)"),
        ([str(out)], f"is a portfolio run: give it as --portfolio {out}"),
        (["--portfolio", str(image)], "is one image's folder; give its run folder"),
        (["--portfolio", str(out), "--arms", "nope"], "no candidate of arm 'nope'"),
        (["--portfolio", str(out), "--baseline", "nope"], "arms: selfdeblur, weak_rec_es"),
        (["--portfolio", str(out), "--excess-grid", "x"], "comma-separated numbers"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            selection["main"](argv)
        assert stopped.value.code == 2 and message in capsys.readouterr().err, argv


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.iteration=3", "optim.iteration"),  # no arm has it: the run's own check
        ("+supervisor.weight=0.5", "portfolio arm weak_rec_es: "),  # one arm has it already
    ],
)
def test_an_override_that_an_arm_cannot_take_is_one_line(tmp_path: Path, override, message):
    out = tmp_path / "out"
    done = run_cli("+exp=portfolio", override, *TINY, f"hydra.run.dir={out}", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("weakdeblur: error: ") and message in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("portfolio.arms=[selfdeblur,nope]", "unknown arm 'nope'; choose from"),
        ("portfolio.arms=[]", "portfolio.arms: a non-empty list"),
        ("portfolio.arms=[selfdeblur,selfdeblur]", "listed twice"),
        ("portfolio.seeds=0", "portfolio.seeds"),
        ("+portfolio.seed=2", "unknown key portfolio.seed"),
        ("+arbiter.criteria.sharpness=1.0", "unknown criterion 'sharpness'"),
        ("portfolio.prune_at=0.5", "portfolio.prune_at: a list of fractions"),
        ("portfolio.prune_at=[0.6,0.3]", "portfolio.prune_at: increasing fractions"),
        ("portfolio.keep=1", "portfolio.keep=1 scores the candidates at the rungs"),
        (  # 10 iterations: both fractions round to iteration 3
            "portfolio.prune_at=[0.3,0.34] optim.iterations=10",
            "puts rungs at iterations [3, 3] of optim.iterations=10",
        ),
        ("portfolio.prune_at=[0.96] optim.iterations=10", "before the end of the budget"),
        ("portfolio.supervisor_candidate=no", "portfolio.supervisor_candidate: true or false"),
        ("arbiter.prefer=[nope]", "arbiter.prefer: unknown arm 'nope'; choose from"),
        ("arbiter.prefer=weak_rec_es", "arbiter.prefer: a list of arms"),
        ("arbiter.discrepancy=-1", "arbiter.discrepancy: a number > 0 or null"),
        ("+arbiter.excess=0", "arbiter.excess: a number > 0 or null"),
        ("~portfolio", "arbiter= chooses among a portfolio's candidates: add +exp=portfolio"),
    ],
)
def test_bad_portfolio_settings_are_refused_before_any_work(override, message):
    from hydra import compose, initialize_config_dir

    from weakdeblur.runtime.preflight import PreflightError, check_settings

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["+exp=portfolio", *override.split()])
        with pytest.raises(PreflightError) as refused:
            check_settings(cfg)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_bad_portfolio_setting_on_the_command_line_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    done = run_cli(
        "+exp=portfolio", "portfolio.arms=[nope]", *TINY, f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("weakdeblur: error: portfolio.arms: unknown arm 'nope'")
    assert not out.exists()


def test_a_portfolio_without_an_arbiter_choice_uses_the_cross_validated_fit_the_preset_gates():
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    from weakdeblur.arbiter import DEFAULT_CRITERIA
    from weakdeblur.runtime.preflight import check_settings

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["portfolio=default"])
        check_settings(cfg)  # no arbiter chosen: not an error
        preset = compose(config_name="config", overrides=["+exp=portfolio"])
    assert "arbiter" not in cfg
    assert dict(preset.arbiter.criteria) == DEFAULT_CRITERIA  # the preset: with the gates
    assert list(preset.arbiter.prefer) == ["weak_rec_es"] and preset.arbiter.discrepancy == 1.5
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        seeds_alone = ["+exp=portfolio", "portfolio.arms=[selfdeblur]"]
        check_settings(compose(config_name="config", overrides=seeds_alone))  # prefer passes over


def test_wandb_logs_the_candidates_side_by_side(monkeypatch):
    import types

    from weakdeblur.runtime.tracking import WandbTracker
    from weakdeblur.types import Result

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data

    class Run:
        def __init__(self):
            self.logged, self.summary, self.finished = [], {}, None

        def log(self, data):
            self.logged.append(data)

        def finish(self, exit_code):
            self.finished = exit_code

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Table=Table))
    tracker = WandbTracker(mode="disabled", log_images=False)
    run = tracker.run = Run()
    portfolio = {
        "chosen": "weak_rec_es-seed0",
        "reason": "weak_rec_es preferred; cross_validated_fit lowest (0.004; next 0.005)",
        "candidates": [
            {"name": "selfdeblur-seed0", "arm": "selfdeblur", "seed": 0, "total": 0.005,
             "scores": {"cross_validated_fit": 0.005, "residual_to_noise": 0.5}, "psnr": 28.0},
            {"name": "weak_rec_es-seed0", "arm": "weak_rec_es", "seed": 0, "total": 0.004,
             "scores": {"cross_validated_fit": 0.004, "residual_to_noise": 0.9}, "psnr": 29.5,
             "pruned_at": None},
        ],
    }  # fmt: skip
    sample = synthetic_sample()
    result = Result("synthetic", sample.sharp, sample.kernel, sample.blurry, 7, 7)
    tracker.end_image(sample, result, {"psnr": 29.5, "portfolio": portfolio})
    (logged,) = run.logged
    table = logged["portfolio/candidates"]
    assert table.columns[:4] == ["candidate", "arm", "seed", "chosen"]
    assert table.columns[-2:] == ["cross_validated_fit", "residual_to_noise"]
    assert [row[3] for row in table.data] == [False, True]  # the chosen one marked
    assert [row[-1] for row in table.data] == [0.5, 0.9]
    assert run.summary["portfolio/chosen"] == "weak_rec_es-seed0"
    assert run.summary["psnr"] == 29.5 and run.finished == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["arbiter.prefer=[xbar-weak_rec_es]"], "with portfolio.supervisor_candidate=true"),
        (
            ["arbiter.prefer=[xbar-selfdeblur]", "portfolio.supervisor_candidate=true"],
            "arm selfdeblur's supervisor is none",
        ),
    ],
)
def test_preferring_g_s_estimate_needs_it_to_exist(overrides, message):
    from weakdeblur.runtime.preflight import PreflightError, compose_arms

    run = ["+exp=portfolio", *overrides]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=run)
        with pytest.raises(PreflightError, match=message):
            compose_arms(cfg, run, "config")
        fine = ["+exp=portfolio", "arbiter.prefer=[xbar-weak_rec_es]"]
        fine.append("portfolio.supervisor_candidate=true")
        cfg = compose(config_name="config", overrides=fine)
        assert set(compose_arms(cfg, fine, "config")) == {"selfdeblur", "weak_rec_es"}


def test_selection_by_seed_pairs_each_draw_with_the_baseline_of_that_seed(capsys):
    """A portfolio of 2 seeds per arm is 2 draws of the one-seed portfolio (each with g's x̄),
    paired with SelfDeblur on the same image and seed; --arms keeps the seeds-only portfolio."""
    selection = run_path(str(PROJECT / "experiments/arbiter/selection.py"))

    def candidate(arm, seed, psnr):
        name = f"{arm}-seed{seed}" if seed is not None else arm
        return {"name": name, "arm": arm, "seed": seed, "psnr": psnr}

    images = {
        "a": [
            candidate("selfdeblur", 0, 20.0),
            candidate("selfdeblur", 1, 24.0),
            candidate("weak", 0, 25.0),
            candidate("weak", 1, 21.0),
            candidate("xbar-weak", None, 22.0),
        ],
        "b": [candidate("selfdeblur", 0, 30.0), candidate("weak", 0, 28.0)],
    }
    draws = selection["selections"](images, by_seed=True)
    assert [(label, image, seed) for label, image, seed, _ in draws] == [
        ("a/seed0", "a", 0),
        ("a/seed1", "a", 1),
        ("b/seed0", "b", 0),
    ]
    assert [c["name"] for c in draws[1][3]] == ["selfdeblur-seed1", "weak-seed1", "xbar-weak"]
    seeds_only = selection["selections"](images, arms=["selfdeblur"])
    assert [(label, [c["psnr"] for c in chosen]) for label, _, _, chosen in seeds_only] == [
        ("a", [20.0, 24.0])  # b has one SelfDeblur seed: nothing to choose among
    ]
    rows = [
        {
            "image": image,
            "seed": seed,
            "arms": [c["arm"] for c in chosen],
            "psnr": [c["psnr"] for c in chosen],
            "reference": [c["psnr"] for c in chosen if c["arm"] == "selfdeblur"],
        }
        for _, image, seed, chosen in draws
    ]
    # always the supervised run: a gains +5 on seed 0 and loses 3 on seed 1 (mean +1), b loses 2
    found = selection["against_baseline"](rows, {"always weak": [25.0, 21.0, 28.0]}, "selfdeblur")
    result = found["always weak"]
    assert result["difference"] == pytest.approx((1.0 - 2.0) / 2)
    assert (result["wins"], result["losses"], result["draws"]) == (1, 1, 3)
    assert (result["draw_wins"], result["draw_losses"]) == (1, 2)
    # worst image mean below its SelfDeblur seed median: b, 28 against 30
    assert result["worst_below_median"] == pytest.approx(-2.0)
    assert "2 images, 3 draws" in capsys.readouterr().out


def test_pruning_replayed_from_a_run_that_pruned_nothing_equals_the_pruned_run(
    tmp_path: Path, monkeypatch
):
    """keep = 1 scores the rungs and prunes nothing; experiments/portfolio/pruning.py replays
    any keep from those scores, and must find what a run with that keep does. Rung scores
    (seed: rung 0, rung 1) 0: 1, 1; 1: 2, 9; 2: 0.5, 2; 3: 3, 9; 4: 1.5, 0.5 give up seeds 1
    and 3 at the first rung and seed 2 at the second."""
    script_rung_scores(monkeypatch, [1.0, 1.0, 2.0, 9.0, 0.5, 2.0, 3.0, 9.0, 1.5, 0.5])
    replay = run_path(str(PROJECT / "experiments/portfolio/pruning.py"))["replay"]
    sample = synthetic_sample()
    arbiter = Arbiter({"cross_validated_fit": 1.0})

    def run(folder: Path, keep: float) -> dict:
        portfolio = Portfolio(
            [arm("selfdeblur", folder)],
            [0, 1, 2, 3, 4],
            arbiter,
            folder,
            NullTracker(),
            pruning=Pruning([0.25, 0.5], keep=keep),  # rungs at 1 and 2 of 4
        )
        record = portfolio.run(sample, {"name": sample.name})
        (folder / sample.name / "metrics.json").write_text(json.dumps(record))
        return record

    scored = run(tmp_path / "scored", 1.0)
    assert all("pruned_at" not in c for c in scored["portfolio"]["candidates"])
    assert scored["iterations"] == 5 * 4
    pruned = run(tmp_path / "pruned", 0.5)
    expected = {
        c["name"]: c["pruned_at"] for c in pruned["portfolio"]["candidates"] if "pruned_at" in c
    }
    assert expected == {"selfdeblur-seed1": 1, "selfdeblur-seed3": 1, "selfdeblur-seed2": 2}
    totals, (image,) = replay(tmp_path / "scored", arbiter, [0.25, 0.5], 0.5)
    assert image["pruned"] == expected
    assert image["chosen"] == pruned["portfolio"]["chosen"]
    assert image["chosen_without_pruning"] == scored["portfolio"]["chosen"]
    assert image["iterations"] == pruned["iterations"] and image["iterations_without_pruning"] == 20
    assert totals["saved"] == pytest.approx(1 - pruned["iterations"] / 20)
    listed = {c["name"]: c for c in pruned["portfolio"]["candidates"]}
    assert totals["psnr"] == pytest.approx(listed[pruned["portfolio"]["chosen"]]["psnr"])
    every = {c["name"]: c["psnr"] for c in scored["portfolio"]["candidates"]}
    survivors = [p for name, p in every.items() if name not in expected]
    assert image["best_pruned"] == (max(survivors) < max(every.values()))
    unchanged, (same,) = replay(tmp_path / "scored", arbiter, [0.25, 0.5], 1.0)
    assert same["pruned"] == {} and unchanged["saved"] == 0
    with pytest.raises(ValueError, match="replay needs portfolio.keep=1"):
        replay(tmp_path / "pruned", arbiter, [0.25, 0.5], 0.5)


def test_pruning_replay_on_the_command_line(tmp_path: Path, capsys):
    out = tmp_path / "out"
    done = run_cli(
        "+exp=portfolio",
        "arbiter=cross_validated",
        "portfolio.arms=[selfdeblur]",
        "portfolio.seeds=3",
        "portfolio.prune_at=[0.5]",
        "portfolio.keep=1",
        "data.crop=48",
        *TINY,
        f"hydra.run.dir={out}",
        "threads=1",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    main = run_path(str(PROJECT / "experiments/portfolio/pruning.py"))["main"]
    figures = tmp_path / "pruning.json"
    # keep 0.01: a candidate goes on only if no earlier one scored better at the rung
    assert main([str(out), "--keep", "0.01,1", "--json", str(figures)]) == 0
    strict, every = json.loads(figures.read_text())
    assert every["totals"]["saved"] == 0 and every["totals"]["iterations"] == 3 * 4
    ((image, record),) = [
        (p.name, json.loads((p / "metrics.json").read_text()))
        for p in out.iterdir()
        if (p / "metrics.json").is_file()
    ]
    rung = [  # the rung scores the run stored, in the order the candidates ran
        json.loads((out / image / "candidates" / c["name"] / "metrics.json").read_text())[
            "rung_scores"
        ]["0"]["cross_validated_fit"]
        for c in record["portfolio"]["candidates"]
    ]
    expected = [j for j in range(1, 3) if min(rung[:j]) < rung[j]]
    assert strict["totals"]["pruned"] == len(expected)
    assert strict["totals"]["iterations"] == 12 - 2 * len(expected)  # each pruned at 2 of 4
    shown = capsys.readouterr().out
    assert "rungs at [0.5] of each pruned arm's budget" in shown
    (row,) = [line.split() for line in shown.splitlines() if line.split()[:1] == ["0.01"]]
    assert row[1:4] == ["1", str(len(expected)), f"{strict['totals']['saved']:.0%}"]
    plain = tmp_path / "plain"  # a run folder that is not a portfolio
    (plain / ".hydra").mkdir(parents=True)
    (plain / ".hydra" / "config.yaml").write_text("experiment: selfdeblur\n")
    for argv, message in [
        ([str(tmp_path)], "not a weakdeblur.run folder"),
        ([str(tmp_path / "nowhere")], "no such folder"),
        ([str(plain)], "not a portfolio run (+exp=portfolio)"),
        ([str(out), "--keep", "0"], "fractions in (0, 1]"),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err
