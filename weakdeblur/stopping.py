"""Stopping policies: when to end an image's optimisation and which iterate to return.

The solver calls :meth:`StoppingPolicy.observe` every ``check_every``
iterations with a :class:`Check`; the policy answers whether to stop, and
:meth:`StoppingPolicy.selected` names the iterate to return (``None``: the
last one). Policies keep only the iterates they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from weakdeblur.supervisors.base import Supervisor


@dataclass
class Check:
    """What the solver knows at a check (tensors are detached)."""

    iteration: int  # completed iterations
    budget: int
    image: torch.Tensor  # x at the observation's size
    kernel: torch.Tensor
    blurred: torch.Tensor  # ŷ = k ⋆ x
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    supervisor: Supervisor | None = None  # g, when the run has one
    supervised: torch.Tensor | None = None  # x̄ = g(y)


@dataclass
class Iterate:
    iteration: int
    image: torch.Tensor
    kernel: torch.Tensor
    blurred: torch.Tensor


class StoppingPolicy:
    """Interface. The default implementation never stops and returns the last iterate."""

    check_every: int = 100

    def start(self, budget: int) -> None:
        """Called once per image before the first iteration."""

    def observe(self, check: Check) -> bool:
        """Return ``True`` to stop after this iteration."""
        return False

    def selected(self) -> Iterate | None:
        """The iterate to return instead of the last one, if any."""
        return None

    def statistics(self) -> dict[str, float]:
        """Scalars describing the policy's state, recorded in the history at log steps."""
        return {}


class FixedBudget(StoppingPolicy):
    """The paper's rule: run the whole budget, return the last iterate."""

    def __init__(self, check_every: int = 100):
        self.check_every = check_every
