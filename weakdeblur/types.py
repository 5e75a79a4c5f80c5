"""The types the layers of the method share: the loss term interface and what the
solver hands on (one iteration's state, a logging step's record, an image's result).

This module sits at the bottom of the package: it imports only torch, the standard
library and :mod:`weakdeblur.data.sample`, so every layer above it (losses, stopping,
solver, tracking, ...) can use these types without importing the solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from weakdeblur.data.sample import Sample

if TYPE_CHECKING:  # annotations only: supervisors sit above this module
    from weakdeblur.supervisors.base import Supervisor


@dataclass
class IterationState:
    """Everything a loss term may use at one iteration."""

    iteration: int
    budget: int
    sample: Sample
    observed: torch.Tensor  # y on the device
    latent: torch.Tensor  # full x, (H + kh - 1, W + kw - 1)
    image: torch.Tensor  # x cropped to y's size
    kernel: torch.Tensor
    blurred: torch.Tensor  # ŷ
    supervisor: Supervisor | None = None  # g (frozen, differentiable in its input)
    supervised: torch.Tensor | None = None  # x̄ = g(y), computed once per image


class LossTerm(nn.Module):
    """An additional weighted objective term (weak supervision, consistency, ...)."""

    name = "term"
    uses_supervisor = False  # reads g or x̄: dropped on images where a gate distrusts g

    def prepare(
        self,
        sample: Sample,
        observed: torch.Tensor,
        supervisor: Supervisor | None,
        supervised: torch.Tensor | None,
    ) -> None:
        """Per-image set-up (e.g. a target computed from x̄), called before iteration 0."""

    def forward(self, state: IterationState) -> torch.Tensor | None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class LogRecord:
    """One row of the history, emitted every ``log_every`` iterations."""

    iteration: int
    scalars: dict[str, float]
    image: torch.Tensor
    kernel: torch.Tensor
    blurred: torch.Tensor
    snapshot: bool = False


@dataclass
class Result:
    name: str
    image: torch.Tensor  # returned x at y's size, (1, C, H, W), on the CPU
    kernel: torch.Tensor  # (1, 1, kh, kw)
    blurred: torch.Tensor  # ŷ for the returned iterate
    iterations: int  # iterations completed
    returned_iteration: int
    status: str = "ok"  # ok | failed
    message: str = ""
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    supervised: torch.Tensor | None = None  # x̄ = g(y) when a supervisor was used
    supervised_kernel: torch.Tensor | None = None  # k̄ when g estimates a kernel (supervisor=map)
    gate: dict[str, float | bool] | None = None  # the reliability gate's verdict on g, if any
    kernel_start: dict[str, float] | None = None  # the warm start's fit of G_k to k̄, if any
    # the stopping rule (a weakdeblur.stopping.StoppingPolicy, which imports this module) that
    # observed this run where it is not the solver's own object (a batched run's copy per
    # image); None: the solver's ``stopping``
    policy: object | None = None


def error_cause(
    error: BaseException | None, kinds: tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first error of ``kinds`` in ``error``'s ``__cause__`` chain (Hydra's instantiation
    errors wrap the user errors of the classes it builds), or ``None``."""
    while error is not None:
        if isinstance(error, kinds):
            return error
        error = error.__cause__
    return None
