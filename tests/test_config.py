"""Every config group option and every experiment preset composes and instantiates."""

from pathlib import Path

import pytest
from conftest import CONF, PROJECT
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from weakdeblur.data import ImageSource
from weakdeblur.run import build_solver
from weakdeblur.solver import Solver

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "exp")
OPTIONS = [
    (group, option.stem) for group in GROUPS for option in sorted((CONF / group).glob("*.yaml"))
]
PRESETS = sorted(p.stem for p in (CONF / "exp").glob("*.yaml"))
EXTRA = {"image": ["data.path=photo.png"]}
TINY_NAFNET = dict(img_channel=1, width=4, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1])


@pytest.fixture(scope="module")
def nafnet_overrides(tmp_path_factory) -> list[str]:
    """supervisor=nafnet needs a checkpoint: a tiny one in the official layout."""
    import torch

    from weakdeblur.supervisors import NAFNet

    path = tmp_path_factory.mktemp("nafnet") / "tiny.pth"
    torch.save({"params": NAFNet(**TINY_NAFNET).state_dict()}, path)
    return [f"supervisor.checkpoint={path}"] + [
        f"supervisor.{key}={value}".replace(" ", "") for key, value in TINY_NAFNET.items()
    ]


TINY_RESTORMER = dict(dim=4, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1])


@pytest.fixture(scope="module")
def restormer_overrides(tmp_path_factory) -> list[str]:
    """supervisor=restormer needs a checkpoint: a tiny one in the official layout."""
    import torch

    from weakdeblur.supervisors import Restormer

    path = tmp_path_factory.mktemp("restormer") / "tiny.pth"
    torch.save({"params": Restormer(**TINY_RESTORMER).state_dict()}, path)
    return [f"supervisor.checkpoint={path}"] + [
        f"supervisor.{key}={value}".replace(" ", "") for key, value in TINY_RESTORMER.items()
    ]


@pytest.fixture
def pretrained_overrides(tmp_path, monkeypatch) -> list[str]:
    """supervisor=pretrained needs a network and its checkpoint: the docs' tiny example."""
    import torch

    monkeypatch.syspath_prepend(str(PROJECT / "docs" / "examples"))
    from tiny_deblur import TinyDeblur

    path = tmp_path / "tiny_deblur.pth"
    torch.save({"params": TinyDeblur().state_dict()}, path)
    return ["supervisor.network._target_=tiny_deblur.TinyDeblur", f"supervisor.checkpoint={path}"]


def compose_with(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def check_instantiates(cfg) -> None:
    source = instantiate(cfg.data)
    assert isinstance(source, ImageSource)
    solver = build_solver(cfg)
    assert isinstance(solver, Solver)
    image_net = solver.image_generator(in_channels=solver.inputs.code_channels, out_channels=1)
    kernel_net = solver.kernel_generator(
        kernel_size=(7, 9), code_size=solver.inputs.kernel_code_size
    )
    assert kernel_net.kernel_size == (7, 9)
    assert sum(p.numel() for p in image_net.parameters()) > 0
    if cfg.logger.get("_target_"):
        instantiate(cfg.logger)
    if cfg.supervisor.get("_target_"):
        instantiate(cfg.supervisor)
    if cfg.get("arbiter"):
        from weakdeblur.arbiter import Arbiter

        assert isinstance(instantiate(cfg.arbiter, _convert_="all"), Arbiter)


def test_groups_found():
    assert {"data", "generator", "supervisor", "loss", "optim", "stopping", "logger"} <= set(GROUPS)
    assert "selfdeblur" in PRESETS


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_group_option_composes_and_instantiates(group, option, request):
    extra = EXTRA.get(option if group == "data" else "", [])
    if group == "supervisor" and option in ("nafnet", "restormer", "pretrained"):
        extra = request.getfixturevalue(f"{option}_overrides")
    cfg = compose_with(f"{group}={option}", *extra)
    check_instantiates(cfg)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_instantiates(preset):
    cfg = compose_with(f"+exp={preset}")
    assert cfg.experiment == preset
    check_instantiates(cfg)


def test_selfdeblur_preset_is_the_paper_configuration():
    cfg = compose_with("+exp=selfdeblur")
    assert cfg.optim.iterations == 5000
    assert list(cfg.optim.milestones) == [0.4, 0.6, 0.8] and cfg.optim.gamma == 0.5
    assert cfg.optim.lr_image == 0.01 and cfg.optim.lr_kernel == 0.0001
    assert cfg.loss.fidelity.switch_fraction == 0.2
    assert (
        list(cfg.generator.image.channels_down) == [128] * 5
        and list(cfg.generator.image.channels_skip) == [16] * 5
    )
    assert list(cfg.generator.image.non_local_scales) == [2, 3, 4]
    assert cfg.generator.inputs.code_channels == 8 and cfg.generator.inputs.kernel_code_size == 200
    solver = build_solver(compose_with("+exp=selfdeblur", "optim.iterations=1500"))
    assert solver.optim.milestone_iterations() == [600, 900, 1200]
    assert solver.fidelity.switch_iteration(1500) == 300


def test_weak_rec_es_preset_is_the_calibrated_proposal():
    """The map g and Eq. 7 at the setting calibrated on synthetic shake (never Levin)."""
    solver = build_solver(compose_with("+exp=weak_rec_es"))
    assert type(solver.supervisor).__name__ == "MAPSupervisor"
    assert sorted(term.name for term in solver.terms) == ["rec", "weak"]
    stopping = solver.stopping
    assert type(stopping).__name__ == "ConsistencyStop" and stopping.relative
    assert (stopping.threshold, stopping.consecutive, stopping.check_every) == (0.42, 3, 100)
    assert solver.kernel_start is None and solver.gate is None


def test_unknown_key_is_rejected():
    with pytest.raises(Exception, match="nonexistent"):
        compose_with("optim.nonexistent=3")


def test_data_root_comes_from_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("WEAKDEBLUR_DATA", str(tmp_path))
    cfg = compose_with("data=levin")
    assert instantiate(cfg.data).root == tmp_path / "levin"
