"""The stopping panel: every member decides exactly as it would alone, on one run."""

import json

import pytest
import torch

from weakdeblur.detection import panel_records, panel_summary
from weakdeblur.stopping import (
    Check,
    ConsistencyStop,
    ExponentialAverage,
    FixedBudget,
    PolicyError,
    PolicyPanel,
    WindowedVariance,
)
from weakdeblur.supervisors import IdentitySupervisor

SHAPE = (1, 1, 6, 6)
BUDGET = 120


def members():
    """Fresh rules with different cadences: consistency every 10, the others every 1 or 20."""
    return {
        "fixed": FixedBudget(check_every=20),
        "consistency": ConsistencyStop(
            threshold=0.08, consecutive=2, check_every=10, min_fraction=0.0
        ),
        "wmv": WindowedVariance(window=6, patience=15, check_every=1),
        "ema_wmv": ExponentialAverage(
            WindowedVariance(window=10, patience=20, check_every=2), decay=0.9, check_every=1
        ),
        "ema": ExponentialAverage(decay=0.8, check_every=1),
    }


def trajectory(seed=0):
    """x_t converging to 0 with noise that first shrinks then grows (a DIP-like curve)."""
    generator = torch.Generator().manual_seed(seed)
    checks = []
    for iteration in range(1, BUDGET + 1):
        scale = 0.3 * abs(iteration - 60) / 60 + 0.01
        image = scale * torch.randn(SHAPE, generator=generator)
        checks.append(Check(iteration, BUDGET, image, torch.ones(1, 1, 3, 3) / 9, image.clone()))
    return checks


def start_arguments():
    return dict(supervisor=IdentitySupervisor(), supervised=torch.zeros(SHAPE))


def alone(policy, checks):
    """The stop iteration and returned image of ``policy`` run by itself, like the solver does."""
    policy.start(BUDGET, **start_arguments())
    last = None
    for check in checks:
        if check.iteration % policy.check_every:
            continue
        last = check
        if policy.observe(check):
            break
    chosen = policy.selected()
    return last.iteration, (chosen.image if chosen is not None else last.image)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_member_decides_as_it_would_alone(seed):
    checks = trajectory(seed)
    panel = PolicyPanel(members())
    assert panel.check_every == 1
    panel.start(BUDGET, **start_arguments())
    for check in checks:
        if panel.observe(check):
            break
    decisions = panel.decisions()
    expected = {name: alone(policy, checks) for name, policy in members().items()}
    assert set(decisions) == set(expected)
    stops = set()
    for name, (stop, image) in expected.items():
        assert decisions[name].stop_iteration == stop, name
        assert decisions[name].stopped_early == (stop < BUDGET)
        torch.testing.assert_close(decisions[name].iterate.image, image, rtol=0, atol=0)
        stops.add(stop)
    assert len(stops) > 2, "the trajectory should make the rules disagree"
    assert panel.selected() is None  # the run itself returns its last iterate


def test_panel_stops_the_run_only_when_every_member_has_decided():
    panel = PolicyPanel(
        {
            "early": ConsistencyStop(threshold=1.0, consecutive=1, check_every=5, min_fraction=0),
            "later": ConsistencyStop(threshold=1.0, consecutive=3, check_every=5, min_fraction=0),
        }
    )
    assert panel.check_every == 5
    panel.start(BUDGET, **start_arguments())
    answers = [panel.observe(check) for check in trajectory()[4::5][:3]]
    assert answers == [False, False, True]  # "early" decided at 5, "later" at 15
    decisions = panel.decisions()
    assert decisions["early"].stop_iteration == 5 and decisions["later"].stop_iteration == 15


def test_members_that_refuse_the_image_are_left_out_with_the_reason(caplog):
    panel = PolicyPanel({"fixed": FixedBudget(10), "consistency": ConsistencyStop()})
    with caplog.at_level("WARNING", logger="weakdeblur.stopping"):
        panel.start(BUDGET)  # no supervisor
        panel.start(BUDGET)  # the next image: said once per run
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 1 and "rule consistency left out" in left_out[0]
    assert list(panel.unavailable) == ["consistency"]
    assert "needs a supervisor" in panel.unavailable["consistency"]
    for check in trajectory()[9::10]:
        panel.observe(check)
    assert list(panel.decisions()) == ["fixed"]
    assert panel.decisions()["fixed"].stop_iteration == BUDGET
    with pytest.raises(PolicyError, match="no rule of the stopping panel"):
        PolicyPanel({"consistency": ConsistencyStop()}).start(BUDGET)


def test_statistics_keep_names_and_prefix_repeats():
    panel = PolicyPanel(
        {
            "plain": ConsistencyStop(threshold=None, check_every=10, min_fraction=0),
            "averaged": ExponentialAverage(
                ConsistencyStop(threshold=None, check_every=10, min_fraction=0), check_every=1
            ),
        }
    )
    panel.start(BUDGET, **start_arguments())
    for check in trajectory()[:10]:
        panel.observe(check)
    statistics = panel.statistics()
    reference = ConsistencyStop(threshold=None, check_every=10, min_fraction=0)
    reference.start(BUDGET, **start_arguments())
    expected = reference.error(trajectory()[9].blurred)
    assert statistics["stop_consistency"] == pytest.approx(expected)
    assert "stop_averaged__consistency" in statistics
    assert statistics["stop_averaged__consistency"] != statistics["stop_consistency"]


def test_panel_records_score_each_rule_and_summary_means():
    panel = PolicyPanel({"fixed": FixedBudget(10), "wmv": WindowedVariance(6, 15, 1)})
    panel.start(BUDGET)
    for check in trajectory():
        panel.observe(check)
    history = [{"iteration": float(i), "psnr": float(i % 50)} for i in range(10, BUDGET + 1, 10)]

    def score(image):
        return {"psnr": -float(image.abs().mean()), "ssim": 0.5}

    records = panel_records(panel.decisions(), score, history, BUDGET, 12.0, BUDGET)
    assert records["fixed"]["stop_iteration"] == BUDGET and records["fixed"]["seconds"] == 12.0
    wmv = records["wmv"]
    assert wmv["stop_iteration"] < BUDGET and wmv["seconds"] == pytest.approx(
        12.0 * wmv["stop_iteration"] / BUDGET
    )
    assert wmv["detection_gap"] == pytest.approx(40.0 - wmv["psnr"])  # peak: i % 50 = 40
    means = panel_summary([{"panel": records}, {"panel": records}, {"name": "no panel"}])
    assert means["wmv"]["images"] == 2 and means["wmv"]["psnr"] == pytest.approx(wmv["psnr"])


def metrics(folder):
    return json.loads((folder / "im1_kernel1_img" / "metrics.json").read_text())


TINY = [
    "supervisor=synthetic",
    "generator=small",
    "data=levin",
    "data.crop=48",
    "data.images=[im1_kernel1_img]",
    "optim.iterations=40",
    "optim.log_every=10",
    "logger=none",
    "progress=false",
    "threads=1",
    "metrics.lpips=false",
    "metrics.error_ratio=false",
]
RULE = ["threshold=0.5", "consecutive=2", "check_every=10", "min_fraction=0.2"]


@pytest.mark.usefixtures("levin_root")
def test_a_panel_run_reports_what_a_run_of_each_rule_alone_gives(tmp_path):
    from conftest import run_weakdeblur

    panel = run_weakdeblur(
        *TINY,
        "stopping=panel",
        "~stopping.members.wmv",
        "~stopping.members.ema_wmv",
        "~stopping.members.ema_consistency",
        *(f"stopping.members.consistency.{setting}" for setting in RULE),
        f"hydra.run.dir={tmp_path / 'panel'}",
    )
    assert panel.returncode == 0, panel.stderr
    alone = run_weakdeblur(
        *TINY,
        "stopping=consistency",
        *(f"stopping.{setting}" for setting in RULE),
        f"hydra.run.dir={tmp_path / 'alone'}",
    )
    assert alone.returncode == 0, alone.stderr
    record, single = metrics(tmp_path / "panel"), metrics(tmp_path / "alone")
    rules = record["panel"]
    assert set(rules) == {"fixed", "consistency", "ema"}
    assert rules["fixed"]["stop_iteration"] == 40 and record["iterations"] == 40
    assert rules["fixed"]["psnr"] == pytest.approx(record["psnr"], abs=1e-6)
    assert rules["consistency"]["stop_iteration"] == single["stop_iteration"]
    assert rules["consistency"]["psnr"] == pytest.approx(single["psnr"], abs=1e-4)
    summary = json.loads((tmp_path / "panel" / "summary.json").read_text())
    assert summary["panel"]["consistency"]["images"] == 1
