"""The supervisor's training data and trainer (tiny sizes)."""

import numpy as np
import pytest
import torch
from conftest import CONF
from hydra import compose, initialize_config_dir

from weakdeblur.data.synthetic import BlurredPatches, dead_leaves, natural_images
from weakdeblur.supervisors import SyntheticSupervisor
from weakdeblur.supervisors.synthetic import SyntheticNet
from weakdeblur.train_supervisor import SupervisorTrainer, TrainSettings, train

TINY_NET = dict(width=8, middle_blk_num=1, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1))


def tiny_data(seed=0):
    return BlurredPatches(
        patch=32,
        kernel_sizes=(9, 15),
        procedural_fraction=1.0,
        procedural_pool=4,
        procedural_size=64,
        kernel_pool=8,
        natural=[],
        seed=seed,
    )


def test_dead_leaves_and_pairs():
    image = dead_leaves(64, np.random.default_rng(1))
    assert image.shape == (64, 64) and 0.0 <= image.min() and image.max() <= 1.0
    assert image.std() > 0.05
    blurry, sharp = tiny_data().batch(3)
    assert blurry.shape == sharp.shape == (3, 1, 32, 32)
    assert (blurry - sharp).abs().mean() > 0.01  # blurred and noisy
    # 8-bit quantised observations
    torch.testing.assert_close(blurry * 255, torch.round(blurry * 255))


def test_natural_images_are_not_levin():
    images = natural_images()
    assert len(images) >= 10
    assert all(image.ndim == 2 and image.dtype == np.float32 for image in images)


def test_trainer_lowers_its_loss_and_resumes(tmp_path):
    torch.manual_seed(0)
    held_out = tiny_data(seed=99).batch(8)
    trainer = SupervisorTrainer(
        SyntheticNet(**TINY_NET),
        tiny_data(),
        TrainSettings(batch=4, steps=40, lr=3e-3, warmup=1, refresh_every=0),
    )
    before = trainer.batch_loss(*held_out)
    for _ in range(40):
        trainer.step()
    after = trainer.batch_loss(*held_out)
    assert after < 0.8 * before
    trainer.save(tmp_path / "checkpoint.pt")
    resumed = SupervisorTrainer(SyntheticNet(**TINY_NET), tiny_data(), trainer.settings)
    resumed.load(tmp_path / "checkpoint.pt")
    assert resumed.step_count == 40
    assert resumed.batch_loss(*held_out) == pytest.approx(after)
    assert resumed.optimizer.state_dict()["state"]  # Adam moments came back


def test_learning_rate_schedule():
    settings = TrainSettings(lr=1e-3, min_lr=0.0, warmup=10, steps=110)
    assert settings.lr_at(0) == pytest.approx(1e-4)
    assert settings.lr_at(10) == pytest.approx(1e-3)
    assert settings.lr_at(60) == pytest.approx(5e-4)
    assert settings.lr_at(110) == pytest.approx(0.0, abs=1e-12)


def test_hydra_entry_point_writes_loadable_weights(tmp_path):
    cfg = _tiny_train_cfg(tmp_path, f"export={tmp_path / 'exported.pt'}", "train.steps=3")
    train(cfg)
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "train.jsonl").is_file()
    g = SyntheticSupervisor(tmp_path / "exported.pt")
    assert g.metadata["step"] == 3
    assert g(torch.rand(1, 1, 20, 20)).shape == (1, 1, 20, 20)
    cfg.train.steps = 5  # resuming continues from step 3
    train(cfg)
    assert SyntheticSupervisor(tmp_path / "weights.pt").metadata["step"] == 5


def test_bf16_trainer_lowers_its_loss_with_fp32_state():
    torch.manual_seed(0)
    held_out = tiny_data(seed=99).batch(8)
    trainer = SupervisorTrainer(
        SyntheticNet(**TINY_NET),
        tiny_data(),
        TrainSettings(batch=4, steps=40, lr=3e-3, warmup=1, refresh_every=0, bf16=True),
    )
    before = trainer.batch_loss(*held_out)
    for _ in range(40):
        trainer.step()
    assert trainer.batch_loss(*held_out) < 0.8 * before
    assert all(p.dtype == torch.float32 for p in trainer.net.parameters())
    with pytest.raises(ValueError, match="train.bf16"):
        TrainSettings(bf16="auto")


def _tiny_train_cfg(out_dir, *extra):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="train_supervisor",
            overrides=[
                f"out_dir={out_dir}",
                "model.width=4",
                "model.enc_blk_nums=[1]",
                "model.dec_blk_nums=[1]",
                "model.middle_blk_num=1",
                "data.patch=32",
                "data.procedural_pool=2",
                "data.procedural_size=64",
                "data.kernel_pool=4",
                "train.batch=2",
                "train.log_every=1",
                "eval.enabled=false",
                *extra,
            ],
        )


def test_init_weights_starts_from_a_weights_file(tmp_path):
    train(_tiny_train_cfg(tmp_path / "first", "train.steps=3"))
    source = tmp_path / "first" / "weights.pt"
    # zero steps from the weights reproduces them exactly
    train(_tiny_train_cfg(tmp_path / "start", "train.steps=0", f"init_weights={source}"))
    probe = torch.rand(1, 1, 24, 24)
    torch.testing.assert_close(
        SyntheticSupervisor(tmp_path / "start" / "weights.pt")(probe),
        SyntheticSupervisor(source)(probe),
    )
    # a fresh net (no init) does not
    train(_tiny_train_cfg(tmp_path / "fresh", "train.steps=0", "seed=5"))
    fresh = SyntheticSupervisor(tmp_path / "fresh" / "weights.pt")(probe)
    assert not torch.allclose(fresh, SyntheticSupervisor(source)(probe))
    # a run's checkpoint.pt works as a start too (its model)
    train(
        _tiny_train_cfg(
            tmp_path / "from_checkpoint",
            "train.steps=0",
            f"init_weights={tmp_path / 'first' / 'checkpoint.pt'}",
        )
    )
    torch.testing.assert_close(
        SyntheticSupervisor(tmp_path / "from_checkpoint" / "weights.pt")(probe),
        SyntheticSupervisor(source)(probe),
    )
    with pytest.raises(
        ValueError, match=r"another architecture: width 4 \(config model.width: 6\)"
    ):
        train(
            _tiny_train_cfg(
                tmp_path / "wrong", "train.steps=0", "model.width=6", f"init_weights={source}"
            )
        )
    with pytest.raises(ValueError, match="init_weights: no file"):
        train(_tiny_train_cfg(tmp_path / "none", f"init_weights={tmp_path / 'missing.pt'}"))


def test_a_signal_checkpoints_and_stops_without_the_final_evaluation(tmp_path, monkeypatch):
    import os
    import signal

    import weakdeblur.train_supervisor as module

    evaluated = []
    monkeypatch.setattr(
        module, "evaluate_on_levin", lambda *args: evaluated.append(1) or {"psnr": 0.0}
    )
    original_step = SupervisorTrainer.step

    def step_then_signal(self):
        loss = original_step(self)
        if self.step_count == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    monkeypatch.setattr(SupervisorTrainer, "step", step_then_signal)
    (tmp_path / "levin").mkdir()
    cfg = _tiny_train_cfg(
        tmp_path / "out",
        "train.steps=10",
        "eval.enabled=true",
        f"eval.root={tmp_path / 'levin'}",
        "eval.every=0",
    )
    handler_before = signal.getsignal(signal.SIGTERM)
    result = train(cfg)
    assert result.interrupted and result.step == 2
    state = torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2
    assert evaluated == []  # no final evaluation after a signal
    assert signal.getsignal(signal.SIGTERM) is handler_before  # handler restored
