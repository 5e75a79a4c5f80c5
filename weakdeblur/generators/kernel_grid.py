r"""G_k for a spatially varying blur: a :math:`P \times Q` grid of kernels.

Two parameterisations, selected by ``shared``:

* **shared** (default): one MLP maps the code :math:`z_k` to
  :math:`P Q\, k_h k_w` logits, and a softmax per cell makes each kernel
  non-negative and sum to one,

  .. math::

      k_{pq} = \mathrm{softmax}\big(\ell_{pq}\big), \qquad
      \ell = W_2\, \mathrm{ReLU6}(W_1 z_k + b_1) + b_2 \in \mathbb R^{P Q\, k_h k_w};

* **shared, residual** (``residual=True``): a common kernel plus per-cell offsets
  in logit space, :math:`\ell_{pq} = \ell_0 + \delta_{pq}`, where the offsets'
  output layer starts at zero, so the grid starts as *one* kernel (the uniform
  model) and departs from it only as the data ask;

* **per cell**: :math:`P Q` independent :class:`KernelMLP` networks (SelfDeblur's
  G_k each), all reading the same code.

The output is ``(1, P, Q, k_h, k_w)``, the layout :class:`weakdeblur.physics.GridBlur` reads.
"""

from __future__ import annotations

import torch
from torch import nn

from weakdeblur.generators.kernel_mlp import KernelMLP


class KernelGridMLP(nn.Module):
    """A grid of softmax kernels, ``(B, P, Q, kh, kw)``.

    Args:
        kernel_size: ``(kh, kw)`` of every cell's kernel.
        code_size: length of the code z_k.
        hidden: hidden units (of the shared MLP, or of each cell's MLP).
        grid: ``(P, Q)``; must match the forward model's grid.
        shared: one MLP for all cells (``True``) or one per cell.
        residual: (shared only) common logits plus zero-initialised per-cell offsets.
    """

    def __init__(
        self,
        kernel_size: tuple[int, int] | list[int] | int,
        code_size: int = 200,
        hidden: int = 1000,
        grid: tuple[int, int] | list[int] | int = (3, 3),
        shared: bool = True,
        residual: bool = False,
    ):
        super().__init__()
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        if isinstance(grid, int):
            grid = (grid, grid)
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))
        self.grid = (int(grid[0]), int(grid[1]))
        self.code_size = code_size
        self.shared, self.residual = shared, residual
        cells = self.grid[0] * self.grid[1]
        size = self.kernel_size[0] * self.kernel_size[1]
        if residual and not shared:
            raise ValueError("residual=True needs shared=True (one MLP with per-cell offsets)")
        if residual:
            self.hidden = nn.Sequential(nn.Linear(code_size, hidden), nn.ReLU6())
            self.common = nn.Linear(hidden, size)
            self.offsets = nn.Linear(hidden, cells * size)
            nn.init.zeros_(self.offsets.weight)
            nn.init.zeros_(self.offsets.bias)
        elif shared:
            self.net = nn.Sequential(
                nn.Linear(code_size, hidden),
                nn.ReLU6(),
                nn.Linear(hidden, cells * self.kernel_size[0] * self.kernel_size[1]),
            )
        else:
            self.cells = nn.ModuleList(
                KernelMLP(self.kernel_size, code_size, hidden) for _ in range(cells)
            )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        code = code.reshape(-1, self.code_size)
        batch = code.shape[0]
        if self.residual:
            features = self.hidden(code)
            offsets = self.offsets(features).reshape(batch, self.grid[0] * self.grid[1], -1)
            kernels = torch.softmax(self.common(features)[:, None] + offsets, dim=-1)
        elif self.shared:
            logits = self.net(code).reshape(batch, self.grid[0] * self.grid[1], -1)
            kernels = torch.softmax(logits, dim=-1)
        else:
            kernels = torch.cat([cell(code) for cell in self.cells], dim=1)
        return kernels.reshape(batch, *self.grid, *self.kernel_size)
