r"""How a run's random start is drawn: ``seeded`` (weakdeblur's own) or ``reference``.

A random start is the code :math:`z_x`, the code :math:`z_k`, the initial weights of
:math:`G_x` and :math:`G_k`, and the stream of perturbations :math:`\varepsilon_t` added to
:math:`z_x` at every iteration. On a single image it decides the result (docs/reproduction.md).

``seeded`` (the default): ``torch.manual_seed(seed)``; the generators are built (their
constructors draw their weights), then, on the run's device,
:math:`z_x = 0.1\,\mathcal U[0,1)^{1 \times 8 \times H' \times W'}`,
:math:`z_k = 0.1\,\mathcal U[0,1)^{200}` and, at each iteration,
:math:`\varepsilon_t \sim \mathcal N(0, \sigma^2)` (``normal_(0, σ)``). Different seeds
give different starts.

``reference``: the draws of SelfDeblur's ``selfdeblur_levin.py`` (csdwren/SelfDeblur
e1c79ee), in its order and with its reseeding; ``seed`` plays no part. Its ``fill_noise``
calls ``torch.manual_seed(0)`` before every code it draws, so

1. ``manual_seed(0)``; :math:`z_x = 0.1\,\mathcal U[0,1)^{1 \times 8 \times H' \times W'}`;
2. :math:`G_x`'s weights, layer by layer in the order the reference ``skip()`` builds
   them (:meth:`SkipNetwork.reference_init_order`), from the stream that follows;
3. ``manual_seed(0)``; :math:`z_k = 0.1\,\mathcal U[0,1)^{200}`, which is therefore
   the first 200 values of :math:`z_x`;
4. :math:`G_k`'s weights (first linear layer, then the second);
5. at each iteration :math:`\varepsilon_t = \sigma\, n_t` with
   :math:`n_t \sim \mathcal N(0, 1)` drawn on the device, from the stream after step 4.

:func:`reference_start` also makes the non-local blocks multiply in the reference's order,
and the solver makes the SSIM of the fidelity do so (same maths, its float rounding). Steps 1-4 run on the CPU (the reference draws them there before moving to the GPU).
Every random layer is re-initialised with its own ``reset_parameters()`` (Conv2d and
Linear: Kaiming-uniform weights, then uniform biases), which draws exactly what its
constructor drew; BatchNorm layers draw nothing. On the CPU in float32 a run then
follows the reference's iterates to float rounding (tests/test_reproduction.py).
"""

from __future__ import annotations

import torch
from torch import nn

SEED_MODES = ("seeded", "reference")
REFERENCE_SEED = 0  # the seed the reference's fill_noise sets before each code


class SeedModeError(ValueError):
    """A seed mode that does not exist, or that these generators cannot follow."""


def check_seed_mode(mode: str) -> str:
    if mode not in SEED_MODES:
        raise SeedModeError(f"seed_mode must be one of {', '.join(SEED_MODES)}; got {mode!r}")
    return mode


def reference_init_order(network: nn.Module) -> list[nn.Module]:
    """The random layers of ``network`` in the reference's construction order."""
    order = getattr(network, "reference_init_order", None)
    if order is None:
        raise SeedModeError(
            f"seed_mode=reference needs SelfDeblur's generators (SkipNetwork, KernelMLP); "
            f"{type(network).__name__} has no reference initialisation order"
        )
    return order()


def follow_reference_arithmetic(module: nn.Module, enabled: bool = True) -> None:
    """Make every part of ``module`` that can compute in the reference's float order (a
    ``reference_arithmetic`` flag: the non-local blocks, the SSIM) do so, or not."""
    for part in module.modules():
        if hasattr(part, "reference_arithmetic"):
            part.reference_arithmetic = enabled


def reinitialise(layers: list[nn.Module]) -> None:
    """``reset_parameters()`` of each layer, in the given order (one draw stream)."""
    for layer in layers:
        layer.reset_parameters()


def reference_start(
    image_net: nn.Module,
    kernel_net: nn.Module,
    code_shape: tuple[int, ...],
    kernel_code_size: int,
    code_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Redraws the weights of the (CPU) networks and returns ``(z_x, z_k)`` on the CPU,
    following steps 1-4 of the module docstring; switches ``image_net`` to the reference's
    arithmetic (:func:`follow_reference_arithmetic`)."""
    image_layers = reference_init_order(image_net)
    follow_reference_arithmetic(image_net)
    kernel_layers = reference_init_order(kernel_net)
    torch.manual_seed(REFERENCE_SEED)
    code = code_scale * torch.rand(code_shape)
    reinitialise(image_layers)
    torch.manual_seed(REFERENCE_SEED)
    kernel_code = code_scale * torch.rand(kernel_code_size)
    reinitialise(kernel_layers)
    return code, kernel_code


def perturbed(code: torch.Tensor, buffer: torch.Tensor, std: float, mode: str) -> torch.Tensor:
    r""":math:`z_x + \varepsilon_t`, drawing :math:`\varepsilon_t` into ``buffer`` (``code``'s
    shape) as the mode does: ``normal_(0, σ)`` (seeded) or ``σ · normal_()`` (reference)."""
    if mode == "reference":
        return code + std * buffer.normal_()
    return code + buffer.normal_(0.0, std)
