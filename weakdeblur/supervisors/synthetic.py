r"""The ``synthetic`` supervisor: a small NAFNet trained here on generated data.

For speed on a CPU the network works at half resolution: the grey input is
rearranged into 4 sub-images (pixel unshuffle, a lossless space-to-depth),
a NAFNet U-Net restores them, and pixel shuffle puts them back:

.. math::

    g(y) = \mathrm{PS}\Big(\mathrm{NAFNet}\big(\mathrm{PU}(y)\big)\Big),

where the NAFNet keeps its global residual, so g learns a correction of y.
The unshuffle doubles every receptive field for the same cost, which matters
for camera-shake kernels of up to 31 px. Weights ship as package data
(``weakdeblur/weights/synthetic.pt``), written by
``python -m weakdeblur.train_supervisor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from weakdeblur.supervisors.base import NetworkSupervisor
from weakdeblur.supervisors.checkpoint import load_checkpoint, mismatch
from weakdeblur.supervisors.errors import SupervisorError
from weakdeblur.supervisors.nafnet import NAFNet

DEFAULT_WEIGHTS = "synthetic.pt"


class SyntheticNet(nn.Module):
    """Pixel unshuffle → NAFNet → pixel shuffle (grey or RGB)."""

    def __init__(
        self,
        channels: int = 1,
        unshuffle: int = 2,
        width: int = 24,
        middle_blk_num: int = 2,
        enc_blk_nums: Sequence[int] = (1, 1, 2, 4),
        dec_blk_nums: Sequence[int] = (1, 1, 1, 1),
    ):
        super().__init__()
        self.channels = channels
        self.unshuffle = unshuffle
        self.net = NAFNet(
            channels * unshuffle**2, width, middle_blk_num, enc_blk_nums, dec_blk_nums
        )
        self.stride = unshuffle * self.net.padder_size

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        height, width = images.shape[-2:]
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
        out, features = self.net.forward_features(F.pixel_unshuffle(images, self.unshuffle))
        return F.pixel_shuffle(out, self.unshuffle)[..., :height, :width], features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)[0]


def architecture(net: SyntheticNet) -> dict:
    inner = net.net
    return {
        "channels": net.channels,
        "unshuffle": net.unshuffle,
        "width": inner.intro.out_channels,
        "middle_blk_num": len(inner.middle_blks),
        "enc_blk_nums": [len(encoder) for encoder in inner.encoders],
        "dec_blk_nums": [len(decoder) for decoder in inner.decoders],
    }


def default_weights() -> Path:
    return Path(str(resources.files("weakdeblur") / "weights" / DEFAULT_WEIGHTS))


def save_weights(net: SyntheticNet, path: str | Path, metadata: dict | None = None) -> None:
    """Writes ``{"params": state, "architecture": ..., "metadata": ...}`` atomically (fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    state = {k: v.detach().float().cpu().clone() for k, v in net.state_dict().items()}
    torch.save(
        {"params": state, "architecture": architecture(net), "metadata": metadata or {}},
        temporary,
    )
    temporary.replace(path)


def load_synthetic(path: str | Path | None = None) -> tuple[SyntheticNet, dict]:
    """Builds the net recorded in a weights file and loads it (``weights_only=True``)."""
    path = Path(path).expanduser() if path is not None else default_weights()
    if not path.is_file():
        raise SupervisorError(
            f"synthetic supervisor weights not found: {path} "
            "(train them with `python -m weakdeblur.train_supervisor` or set supervisor.weights=PATH)"
        )
    state = load_checkpoint(path, "synthetic supervisor weights")
    if not isinstance(state, dict) or "architecture" not in state or "params" not in state:
        found = list(state)[:5] if isinstance(state, dict) else type(state).__name__
        raise SupervisorError(
            f"{path} is not a synthetic-supervisor weights file: expected the keys "
            f"'architecture' and 'params', found {found}"
        )
    try:
        net = SyntheticNet(**state["architecture"])
        net.load_state_dict(state["params"])
    except (TypeError, RuntimeError) as error:
        raise SupervisorError(
            f"{path} does not match the SyntheticNet it describes ({state['architecture']}): "
            f"{mismatch(error)}"
        ) from error
    return net, dict(state.get("metadata", {}))


class SyntheticSupervisor(NetworkSupervisor):
    """g = our :class:`SyntheticNet`, trained on procedural and scikit-image photographs.

    Args:
        weights: weights file (default: the shipped ``weakdeblur/weights/synthetic.pt``).
    """

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        self.net, self.metadata = load_synthetic(weights)
        self.channels = self.net.channels
        self.stride = self.net.stride
        self.freeze()
