r"""Any pretrained deblurring network as g: a user's module plus a checkpoint.

The network is built by Hydra from its ``_target_`` (the class, importable
from the user's ``PYTHONPATH``) and arguments, then loaded strictly from the
checkpoint, so no code is read from the checkpoint itself
(``torch.load(weights_only=True)``):

.. code-block:: yaml

    # supervisor=pretrained
    _target_: weakdeblur.supervisors.PretrainedSupervisor
    network: {_target_: my_package.MyNet, width: 32}
    checkpoint: my_net.pth
    key: params        # where the state dict is in the file (null: the file is one)
    prefix: null       # e.g. "module." for checkpoints saved from DataParallel
    channels: 3        # the channels the network takes and returns
    multiple: 8        # input sizes the network needs (padded by reflection, output cropped)

The network maps a ``(B, channels, H, W)`` image in [0, 1] to the deblurred
image of the same shape (residual included); a network returning several
outputs needs a small wrapper module that returns the image. Features for
``loss.terms.rec.level=features`` come from the network's
``forward_features(x) -> (output, [maps])`` when it has one, else the output only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from weakdeblur.supervisors.base import Supervisor
from weakdeblur.supervisors.checkpoint import load_weights
from weakdeblur.supervisors.errors import SupervisorError


class PretrainedSupervisor(Supervisor):
    """g = ``network`` with the weights of ``checkpoint`` (strict), frozen.

    Args:
        network: the module (Hydra builds it from ``supervisor.network._target_``).
        checkpoint: path of the weights file.
        key: the state-dict key in the file; ``None`` when the file is the state dict.
        prefix: a prefix to remove from every parameter name (``"module."``).
        channels: image channels of the network (1 grey, 3 RGB); others are converted.
        multiple: input height and width are padded (reflection) to a multiple of this.
    """

    def __init__(
        self,
        network: nn.Module,
        checkpoint: str | Path | None,
        key: str | None = "params",
        prefix: str | None = None,
        channels: int = 3,
        multiple: int = 1,
    ):
        super().__init__()
        if not isinstance(network, nn.Module):
            raise SupervisorError(
                "supervisor.network must build a torch.nn.Module "
                f"(set supervisor.network._target_), got {type(network).__name__}"
            )
        if channels not in (1, 3) or multiple < 1:
            raise SupervisorError(
                f"supervisor.channels must be 1 or 3 and supervisor.multiple at least 1, "
                f"got {channels} and {multiple}"
            )
        self.net = network
        load_weights(self.net, checkpoint, key, prefix)
        self.channels = channels
        self.stride = multiple
        self.freeze()

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def restore_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if hasattr(self.net, "forward_features"):
            out, features = self.net.forward_features(images)
            return [*features, out]
        return [self.restore(images)]
