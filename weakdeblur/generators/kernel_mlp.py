r"""G_k: the kernel generator of SelfDeblur.

A two-layer perceptron maps a fixed code :math:`z_k \in \mathbb{R}^{200}` to
:math:`k_h k_w` logits; a softmax makes the kernel non-negative and sum to one:

.. math::

    k = \mathrm{reshape}\big(\mathrm{softmax}(W_2\, \mathrm{ReLU6}(W_1 z_k + b_1) + b_2)\big)
    \in \Delta^{k_h k_w - 1}.
"""

from __future__ import annotations

import torch
from torch import nn


class KernelMLP(nn.Module):
    """MLP ``code_size → hidden (ReLU6) → kh·kw`` with a softmax, shaped ``(1, 1, kh, kw)``."""

    def __init__(
        self,
        kernel_size: tuple[int, int] | list[int] | int,
        code_size: int = 200,
        hidden: int = 1000,
    ):
        super().__init__()
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))
        self.code_size = code_size
        self.net = nn.Sequential(
            nn.Linear(code_size, hidden),
            nn.ReLU6(),
            nn.Linear(hidden, self.kernel_size[0] * self.kernel_size[1]),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        code = code.reshape(-1, self.code_size)
        logits = self.net(code)
        return torch.softmax(logits, dim=-1).reshape(code.shape[0], 1, *self.kernel_size)

    def reference_init_order(self) -> list[nn.Module]:
        """The two linear layers, in the reference ``fcn()``'s construction order."""
        return [self.net[0], self.net[2]]
