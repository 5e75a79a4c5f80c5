r"""The plain SelfDeblur loop, written as the reference script writes it: the benchmark's baseline.

``make bench`` reports the solver's speed variants as ratios against this loop. It uses the
same networks (:class:`SkipNetwork`, :class:`KernelMLP`) and the same maths as
:class:`weakdeblur.solver.Solver` under ``seed_mode=reference``, but none of the framework
around it (no stopping rule, loss terms, speed settings, logging records or failure
handling). One iteration, in the order of csdwren/SelfDeblur's ``selfdeblur_levin.py``:

.. math::

    z_t = z_x + \sigma\, n_t,\ n_t \sim \mathcal N(0, 1);\qquad
    x = G_x(z_t),\ k = G_k(z_k);\qquad \hat y = k \star x \ \text{(valid conv2d)};

    \mathcal L = \mathrm{MSE}(\hat y, y)\ \text{before the switch, else}\ 1 - \mathrm{SSIM}(\hat y, y);

then ``backward``, an Adam step (learning rates 1e-2 for G_x, 1e-4 for G_k) and a
``MultiStepLR`` step (halving at the milestones). The random start is the reference's
(:func:`weakdeblur.seeding.reference_start`, which also puts the non-local blocks in the
reference's order of multiplication) and so is the SSIM's arithmetic, so on the CPU in
float32 the losses equal the solver's under ``seed_mode=reference`` to float rounding
(``tests/test_bench.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from weakdeblur.generators import KernelMLP, SkipNetwork
from weakdeblur.losses import ZeroPaddedSSIM
from weakdeblur.seeding import reference_start


@dataclass
class BaselineResult:
    """Rows ``{"iteration", "loss", "seconds"}`` every ``log_every`` iterations (``seconds``
    since the loop's set-up began), and the last estimate on the CPU."""

    history: list[dict[str, float]] = field(default_factory=list)
    image: torch.Tensor | None = None
    kernel: torch.Tensor | None = None


def baseline_loop(
    blurry: torch.Tensor,
    kernel_size: tuple[int, int],
    iterations: int,
    log_every: int = 1,
    switch_iteration: int = 1000,
    milestones: Sequence[int] = (2000, 3000, 4000),
    device: str | torch.device = "cpu",
    image_network: dict | None = None,
    kernel_hidden: int = 1000,
    noise_std: float = 1e-3,
) -> BaselineResult:
    """Run the reference loop for ``iterations`` iterations on ``blurry`` (1, 1, H, W).

    ``switch_iteration``: the first iteration of the SSIM loss (the reference: 1000);
    ``milestones``: the learning-rate halvings (the reference: 2000, 3000, 4000);
    ``image_network``: keyword arguments of :class:`SkipNetwork` (default: the paper's);
    ``kernel_hidden``: G_k's hidden width. A history row is recorded every ``log_every``
    iterations; only those rows synchronise with the host.
    """
    started = time.perf_counter()
    device = torch.device(device)
    kh, kw = kernel_size
    y = blurry.to(device)
    height, width = y.shape[-2] + kh - 1, y.shape[-1] + kw - 1
    net = SkipNetwork(in_channels=8, out_channels=1, **(image_network or {}))
    net_kernel = KernelMLP((kh, kw), code_size=200, hidden=kernel_hidden)
    net_input, net_input_kernel = reference_start(net, net_kernel, (1, 8, height, width), 200, 0.1)
    net, net_kernel = net.to(device), net_kernel.to(device)
    net_input_saved, net_input_kernel = net_input.to(device), net_input_kernel.to(device)
    ssim = ZeroPaddedSSIM().to(device)
    ssim.reference_arithmetic = True
    optimizer = torch.optim.Adam(
        [{"params": net.parameters()}, {"params": net_kernel.parameters(), "lr": 1e-4}], lr=1e-2
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=0.5)
    result = BaselineResult()
    for step in range(iterations):
        net_input = net_input_saved + noise_std * torch.zeros_like(net_input_saved).normal_()
        optimizer.zero_grad()
        out_x = net(net_input)
        out_k = net_kernel(net_input_kernel)
        out_k_m = out_k.view(-1, 1, kh, kw)
        out_y = F.conv2d(out_x, out_k_m, padding=0, bias=None)
        if step < switch_iteration:
            total_loss = F.mse_loss(out_y, y)
        else:
            total_loss = 1 - ssim(out_y, y)
        total_loss.backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % log_every == 0 or step + 1 == iterations:
            result.history.append(
                {
                    "iteration": float(step + 1),
                    "loss": float(total_loss.detach()),
                    "seconds": time.perf_counter() - started,
                }
            )
    result.image = out_x.detach().cpu() if iterations else None
    result.kernel = out_k_m.detach().cpu() if iterations else None
    return result
