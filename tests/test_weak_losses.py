"""Weak-supervision and consistency terms, distances and weight schedules."""

import pytest
import torch
from torch import nn

from weakdeblur.data.sample import Sample
from weakdeblur.losses import (
    DISTANCES,
    ConsistencyLoss,
    ConstantWeight,
    CosineWeight,
    LinearDecayWeight,
    LossConfigError,
    LPIPSDistance,
    StepWeight,
    WeakLoss,
    make_distance,
)
from weakdeblur.physics import UniformBlur, crop_to_observed
from weakdeblur.supervisors import Supervisor, SyntheticNet
from weakdeblur.types import IterationState


def distance(name):
    return LPIPSDistance(random_backbone=True) if name == "lpips" else make_distance(name)


@pytest.mark.parametrize("name", sorted(DISTANCES))
def test_distance_is_zero_for_identical_inputs_and_positive_otherwise(name):
    e = distance(name)
    a = torch.rand(1, 1, 40, 40)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    assert float(e(a, a.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(e(a, b)) > 1e-4


def test_lpips_without_backbone_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.setattr(
        "weakdeblur.metrics.lpips_backbone_path", lambda: tmp_path / "alexnet-owt-7be5be79.pth"
    )
    with pytest.raises(LossConfigError, match="AlexNet backbone"):
        make_distance("lpips")


def test_unknown_distance_is_rejected():
    with pytest.raises(LossConfigError, match="unknown distance"):
        make_distance("l3")


def test_schedules_give_the_expected_weights():
    budget = 1000
    assert ConstantWeight(0.3)(999, budget) == 0.3
    linear = LinearDecayWeight(0.2, end_fraction=0.5)
    assert linear(0, budget) == pytest.approx(0.2)
    assert linear(250, budget) == pytest.approx(0.1)
    assert linear(500, budget) == 0.0 and linear(900, budget) == 0.0
    step = StepWeight(1.0, fractions=(0.4, 0.8), gamma=0.1)
    assert step(399, budget) == 1.0
    assert step(400, budget) == pytest.approx(0.1)
    assert step(800, budget) == pytest.approx(0.01)
    cosine = CosineWeight(2.0, end_fraction=0.5)
    assert cosine(0, budget) == pytest.approx(2.0)
    assert cosine(250, budget) == pytest.approx(1.0)
    assert cosine(500, budget) == pytest.approx(0.0, abs=1e-12)
    assert cosine(700, budget) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(LossConfigError):
        LinearDecayWeight(1.0, end_fraction=0.0)


class TinyG(Supervisor):
    """A small random SyntheticNet as g (weights irrelevant, only the plumbing)."""

    def __init__(self):
        super().__init__()
        self.net = SyntheticNet(width=4, middle_blk_num=1, enc_blk_nums=(1,), dec_blk_nums=(1,))
        for block in self.net.modules():  # make the blocks active (beta/gamma start at zero)
            if hasattr(block, "beta"):
                nn.init.constant_(block.beta, 0.5)
                nn.init.constant_(block.gamma, 0.5)
        self.stride = self.net.stride
        self.freeze()

    def restore(self, images):
        return self.net(images)

    def restore_features(self, images):
        out, features = self.net.forward_features(images)
        return [*features, out]


def make_state(image_net, g, observed, kernel_size=(5, 5), iteration=0, budget=10):
    code = torch.rand(1, 2, observed.shape[-2] + 4, observed.shape[-1] + 4)
    latent = torch.sigmoid(image_net(code))
    kernel = torch.full((1, 1, *kernel_size), 1.0 / 25)
    blurred = UniformBlur()(latent, kernel)
    sample = Sample("t", observed, kernel_size)
    with torch.no_grad():
        supervised = g(observed)
    return IterationState(
        iteration,
        budget,
        sample,
        observed,
        latent,
        crop_to_observed(latent, kernel_size),
        kernel,
        blurred,
        g,
        supervised,
    )


@pytest.mark.parametrize("target", ["g_of_y", "g_of_xbar"])
@pytest.mark.parametrize("level", ["output", "features"])
def test_gradients_reach_the_image_generator_through_rec_and_not_g(target, level):
    g = TinyG()
    image_net = nn.Conv2d(2, 1, 3, padding=1)
    observed = torch.rand(1, 1, 24, 24)
    state = make_state(image_net, g, observed)
    rec = ConsistencyLoss("l1", weight=1.0, target=target, level=level)
    rec.prepare(state.sample, observed, g, state.supervised)
    value = rec(state)
    assert value.requires_grad and float(value.detach()) > 0
    value.backward()
    assert image_net.weight.grad is not None and image_net.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in g.parameters())


def test_rec_targets_differ():
    g = TinyG()
    observed = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        supervised = g(observed)
    sample = Sample("t", observed, (5, 5))
    of_y, of_xbar = ConsistencyLoss(target="g_of_y"), ConsistencyLoss(target="g_of_xbar")
    of_y.prepare(sample, observed, g, supervised)
    of_xbar.prepare(sample, observed, g, supervised)
    torch.testing.assert_close(of_y._target[0], supervised)
    assert (of_xbar._target[0] - supervised).abs().max() > 1e-4


def test_weak_loss_compares_the_cropped_image_with_xbar_and_follows_its_schedule():
    g = TinyG()
    image_net = nn.Conv2d(2, 1, 3, padding=1)
    observed = torch.rand(1, 1, 24, 24)
    weak = WeakLoss("l2", weight=LinearDecayWeight(2.0, end_fraction=0.5))
    state = make_state(image_net, g, observed, iteration=0, budget=10)
    weak.prepare(state.sample, observed, g, state.supervised)
    expected = 2.0 * torch.mean((state.image - state.supervised) ** 2)
    torch.testing.assert_close(weak(state), expected)
    late = make_state(image_net, g, observed, iteration=6, budget=10)
    assert float(weak(late)) == 0.0


def test_terms_need_a_supervisor():
    observed = torch.rand(1, 1, 16, 16)
    sample = Sample("t", observed, (3, 3))
    with pytest.raises(LossConfigError, match="needs a supervisor"):
        WeakLoss().prepare(sample, observed, None, None)
    with pytest.raises(LossConfigError, match="needs a supervisor"):
        ConsistencyLoss().prepare(sample, observed, None, None)
    with pytest.raises(LossConfigError, match="feature-level"):
        ConsistencyLoss("ssim", level="features")
