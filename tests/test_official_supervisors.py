"""Pretrained networks as g: NAFNet as officially run (padding, TLC), Restormer, any network.

``official_layouts.json`` holds the parameter names and shapes of the official
NAFNet (GoPro width 32) and Restormer (motion deblurring, dim 48). It was
generated outside this project by instantiating the official classes
(megvii-research/NAFNet@2b4af71, swz30/Restormer@df766d5, see its "about")
and listing ``state_dict()`` names and shapes; no official code is used here.
"""

import json
import sys
from pathlib import Path

import kornia
import pytest
import torch
import torch.nn.functional as F
from conftest import CONF, PROJECT
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from weakdeblur.supervisors import (
    NAFNet,
    NAFNetSupervisor,
    PretrainedSupervisor,
    Restormer,
    RestormerSupervisor,
    SupervisorError,
)
from weakdeblur.supervisors.restormer import Attention, ChannelNorm
from weakdeblur.supervisors.tlc import LocalAvgPool2d, tlc_kernel_size, use_local_statistics

LAYOUTS = json.loads((Path(__file__).parent / "official_layouts.json").read_text())
TINY_NAFNET = dict(
    img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1)
)
TINY_RESTORMER = dict(
    dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 2, 4), bias=True
)
EXAMPLES = PROJECT / "docs" / "examples"


def randomise(net: torch.nn.Module) -> torch.nn.Module:
    """Default conv init; norms, temperatures, NAFNet's beta/gamma and biases moved off
    their initial values so that every part of the network matters."""
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if parameter.dim() == 1 or name.endswith(("temperature", "beta", "gamma")):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return net


def layout(net: torch.nn.Module) -> dict[str, list[int]]:
    return {name: list(tensor.shape) for name, tensor in net.state_dict().items()}


# -- official layouts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "model, build",
    [("nafnet_gopro_width32", NAFNet), ("restormer_motion_deblurring", Restormer)],
)
def test_our_networks_have_the_official_names_and_shapes(model, build):
    spec = LAYOUTS[model]
    ours = layout(build(**spec["config"]))
    assert len(spec["state_dict"]) > 400
    assert sorted(set(ours) ^ set(spec["state_dict"])) == []  # names first: a readable failure
    assert ours == spec["state_dict"]


# -- Restormer -----------------------------------------------------------------------


def test_restormer_layer_norms_follow_their_formulas():
    x = torch.randn(2, 5, 3, 4) + 2.0  # a non-zero mean separates the two norms
    weight = torch.rand(5) + 0.5
    variance = x.var(dim=1, keepdim=True, unbiased=False)
    bias_free = ChannelNorm(5, with_bias=False)
    bias_free.weight.data.copy_(weight)
    expected = x / torch.sqrt(variance + 1e-5) * weight.view(1, -1, 1, 1)  # not centred
    torch.testing.assert_close(bias_free(x), expected)
    with_bias = ChannelNorm(5, with_bias=True)
    with_bias.weight.data.copy_(weight)
    with_bias.bias.data.fill_(0.25)
    centred = (x - x.mean(1, keepdim=True)) / torch.sqrt(variance + 1e-5)
    torch.testing.assert_close(with_bias(x), centred * weight.view(1, -1, 1, 1) + 0.25)
    assert (bias_free(x) - with_bias(x)).abs().max() > 0.5


def test_restormer_attention_is_between_channels_with_a_temperature_per_head():
    attention = randomise(Attention(channels=4, heads=2, bias=True))
    x = torch.randn(1, 4, 3, 5)
    q, k, v = attention.qkv_dwconv(attention.qkv(x)).chunk(3, dim=1)
    out = torch.zeros(1, 4, 15)
    for head in range(2):
        rows = slice(2 * head, 2 * head + 2)
        qh, kh, vh = (t[0, rows].reshape(2, 15) for t in (q, k, v))
        qh, kh = qh / qh.norm(dim=1, keepdim=True), kh / kh.norm(dim=1, keepdim=True)
        weights = torch.softmax(attention.temperature[head] * qh @ kh.T, dim=1)  # 2 x 2
        out[0, rows] = weights @ vh
    expected = attention.project_out(out.reshape(1, 4, 3, 5))
    torch.testing.assert_close(attention(x), expected)


def test_restormer_supervisor_round_trips_a_checkpoint_and_pads_as_officially(tmp_path):
    net = randomise(Restormer(**TINY_RESTORMER)).eval()
    path = tmp_path / "motion_deblurring.pth"
    torch.save({"params": net.state_dict()}, path)
    g = RestormerSupervisor(str(path), **TINY_RESTORMER)
    assert g.stride == 8 and not g.training
    assert all(not p.requires_grad for p in g.parameters())
    for name, value in net.state_dict().items():
        torch.testing.assert_close(g.net.state_dict()[name], value, rtol=0, atol=0)
    image = torch.rand(1, 3, 21, 30)  # odd sizes: reflection to 24 x 32, as the official test
    with torch.no_grad():
        expected = net(F.pad(image, (0, 2, 0, 3), mode="reflect"))[..., :21, :30]
        restored = g(image)
    assert 0.0 < float((expected - image).abs().mean())  # the network does something
    torch.testing.assert_close(restored, expected.clamp(0, 1))
    grey = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        rgb = net(grey.expand(-1, 3, -1, -1))
    torch.testing.assert_close(g(grey), kornia.color.rgb_to_grayscale(rgb).clamp(0, 1))
    image.requires_grad_(True)  # the consistency term differentiates g with respect to its input
    g(image).square().sum().backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0


def test_restormer_supervisor_errors_are_clear(tmp_path):
    with pytest.raises(SupervisorError, match="checkpoint not found"):
        RestormerSupervisor(str(tmp_path / "missing.pth"), **TINY_RESTORMER)
    path = tmp_path / "restormer.pth"
    torch.save({"params": Restormer(**TINY_RESTORMER).state_dict()}, path)
    with pytest.raises(SupervisorError, match=r"does not match Restormer\(dim=8.*BiasFree"):
        RestormerSupervisor(str(path), **{**TINY_RESTORMER, "LayerNorm_type": "BiasFree"})
    with pytest.raises(SupervisorError, match="no 'state_dict'"):
        RestormerSupervisor(str(path), **TINY_RESTORMER, key="state_dict")


# -- NAFNet padding ------------------------------------------------------------------


def test_nafnet_padding_official_zero_pads_inside_and_reflect_mirrors(tmp_path):
    net = randomise(NAFNet(**TINY_NAFNET)).eval()  # pads to multiples of 4
    path = tmp_path / "nafnet.pth"
    torch.save({"params": net.state_dict()}, path)
    official = NAFNetSupervisor(str(path), **TINY_NAFNET)
    reflect = NAFNetSupervisor(str(path), **TINY_NAFNET, padding="reflect")
    image = torch.rand(1, 3, 21, 18)
    with torch.no_grad():
        zero_padded = net(F.pad(image, (0, 2, 0, 3)))[..., :21, :18]
        mirrored = net(F.pad(image, (0, 2, 0, 3), mode="reflect"))[..., :21, :18]
        by_official, by_reflect = official(image), reflect(image)
    torch.testing.assert_close(by_official, zero_padded.clamp(0, 1))
    torch.testing.assert_close(by_reflect, mirrored.clamp(0, 1))
    gap = (by_official - by_reflect).abs()
    # mostly near the padded bottom and right borders (the global channel attention spreads a little)
    assert gap[..., :12, :10].max() < 0.01 < gap[..., 17:, 14:].max()
    with pytest.raises(SupervisorError, match="padding must be one of official, reflect"):
        NAFNetSupervisor(str(path), **TINY_NAFNET, padding="zeros")


# -- NAFNet TLC ----------------------------------------------------------------------


def direct_local_mean(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Each pixel: the mean of the kernel window centred on it, shifted inside the image."""
    height, width = x.shape[-2:]
    if kernel[0] >= height and kernel[1] >= width:
        return x.mean(dim=(-2, -1), keepdim=True)
    k1, k2 = min(height, kernel[0]), min(width, kernel[1])
    out = torch.empty_like(x)
    for i in range(height):
        for j in range(width):
            top = min(max(i - (k1 - 1) // 2, 0), height - k1)
            left = min(max(j - (k2 - 1) // 2, 0), width - k2)
            out[..., i, j] = x[..., top : top + k1, left : left + k2].mean(dim=(-2, -1))
    return out


@pytest.mark.parametrize("kernel", [(3, 4), (4, 5), (1, 1), (10, 4), (3, 20), (7, 9), (12, 30)])
def test_tlc_local_mean_matches_a_direct_computation(kernel):
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    pooled = LocalAvgPool2d(kernel)(x)
    expected = direct_local_mean(x, kernel)
    assert pooled.shape == (expected.shape if expected.shape[-1] == 1 else x.shape)
    torch.testing.assert_close(pooled, expected, rtol=0, atol=1e-12)


def test_tlc_kernels_are_the_official_ones():
    # official: base size int(1.5 * 256) = 384; kernel = feature size at 256 x 256 * 384 // 256
    assert [tlc_kernel_size(level, 16) for level in range(5)] == [
        (384, 384),
        (192, 192),
        (96, 96),
        (48, 48),
        (24, 24),
    ]
    # a train size that is not a multiple of 16 is zero-padded first (250 -> 256), base 375
    assert tlc_kernel_size(0, 16, (250, 100)) == (256 * 375 // 250, 112 * 150 // 100)
    net = use_local_statistics(NAFNet(**TINY_NAFNET), train_size=(32, 32))
    assert net.encoders[0][0].sca[0].kernel_size == (48, 48)
    assert net.encoders[1][0].sca[0].kernel_size == (24, 24)
    assert net.middle_blks[0].sca[0].kernel_size == (12, 12)
    assert net.decoders[0][0].sca[0].kernel_size == (24, 24)
    assert net.decoders[1][0].sca[0].kernel_size == (48, 48)


def test_nafnet_tlc_changes_only_inputs_above_one_and_a_half_train_sizes(tmp_path):
    net = randomise(NAFNet(**TINY_NAFNET)).eval()
    path = tmp_path / "nafnet.pth"
    torch.save({"params": net.state_dict()}, path)
    local = NAFNetSupervisor(str(path), **TINY_NAFNET, tlc=True, train_size=(32, 32))
    assert set(local.state_dict()) == {f"net.{name}" for name in net.state_dict()}
    small, large = torch.rand(1, 3, 45, 47), torch.rand(1, 3, 61, 77)  # padded: 48 x 48, 64 x 80
    with torch.no_grad():
        torch.testing.assert_close(local.net(small), net(small))
        assert (local.net(large) - net(large)).abs().max() > 1e-4
        # by hand: the same network with every pooling replaced by the direct local mean
        for blocks, kernel in [
            (net.encoders[0], 48), (net.encoders[1], 24), (net.middle_blks, 12),
            (net.decoders[0], 24), (net.decoders[1], 48),
        ]:  # fmt: skip
            for block in blocks:
                block.sca[0] = _Direct((kernel, kernel))
        torch.testing.assert_close(local.net(large), net(large), rtol=0, atol=1e-5)
    large.requires_grad_(True)  # the local mean is differentiable
    local(large).square().sum().backward()
    assert float(large.grad.abs().sum()) > 0


class _Direct(torch.nn.Module):
    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel

    def forward(self, x):
        return direct_local_mean(x, self.kernel)


# -- any other network ---------------------------------------------------------------


@pytest.fixture
def tiny_deblur(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield __import__("tiny_deblur")
    sys.modules.pop("tiny_deblur", None)


def test_docs_show_the_tiny_example_network_verbatim():
    docs = (PROJECT / "docs" / "supervisors.md").read_text()
    code = (EXAMPLES / "tiny_deblur.py").read_text()
    body = code[code.index("import torch") :]
    assert body.strip() in docs


def test_any_network_loads_through_the_pretrained_config(tiny_deblur, tmp_path):
    net = randomise(tiny_deblur.TinyDeblur(channels=3, width=8)).eval()
    path = tmp_path / "tiny_deblur.pth"
    # saved from DataParallel under "state_dict", as some repositories do
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    overrides = [
        "supervisor=pretrained",
        "supervisor.network._target_=tiny_deblur.TinyDeblur",
        "+supervisor.network.width=8",
        f"supervisor.checkpoint={path}",
        "supervisor.key=state_dict",
        "supervisor.prefix=module.",
        "supervisor.multiple=2",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    g = instantiate(cfg.supervisor)
    assert isinstance(g, PretrainedSupervisor)
    assert all(not p.requires_grad for p in g.parameters())
    image = torch.rand(1, 3, 21, 30)  # odd height: reflected to 22
    with torch.no_grad():
        expected = net(F.pad(image, (0, 0, 0, 1), mode="reflect"))[..., :21, :]
    assert float((expected - image).abs().max()) > 1e-3
    torch.testing.assert_close(g(image), expected.clamp(0, 1))
    assert g(torch.rand(1, 1, 8, 8)).shape == (1, 1, 8, 8)


def test_any_network_errors_are_clear(tiny_deblur, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_deblur.TinyDeblur(width=8).state_dict(), path)  # the file is the state dict
    g = PretrainedSupervisor(tiny_deblur.TinyDeblur(width=8), str(path), key=None)
    assert g.stride == 1
    with pytest.raises(SupervisorError, match="does not match TinyDeblur: size mismatch"):
        PretrainedSupervisor(tiny_deblur.TinyDeblur(width=4), str(path), key=None)
    with pytest.raises(SupervisorError, match="no 'params' state dict"):
        PretrainedSupervisor(tiny_deblur.TinyDeblur(width=8), str(path))
    with pytest.raises(SupervisorError, match="must build a torch.nn.Module"):
        PretrainedSupervisor({"_target_": "x"}, str(path))
