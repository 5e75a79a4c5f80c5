"""Fault injection for the reliability tests (never part of a preset).

:class:`NonFiniteAt` is an ordinary loss term, added from the command line,
that turns the loss into NaN from a given iteration on, for chosen images::

    python -m weakdeblur.run '+loss.terms.fault={_target_:weakdeblur.runtime.faults.NonFiniteAt,at:12,images:[a]}'

It goes through the same code as a real divergence (the term multiplies x
by NaN, so the gradients and then the weights become NaN), and the solver
loop is untouched: the term only exists when configured.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from weakdeblur.types import IterationState, LossTerm


class NonFiniteAt(LossTerm):
    r"""Adds :math:`\mathrm{NaN}\cdot\overline{x}` to the loss from iteration ``at`` (0-based).

    Args:
        at: the first iteration with a NaN loss.
        images: the image names affected (``None``: every image).
        value: ``nan`` (default), ``inf`` or ``-inf``.
    """

    name = "fault"

    def __init__(self, at: int, images: Sequence[str] | None = None, value: str = "nan"):
        super().__init__()
        self.at = int(at)
        self.images = set(images) if images is not None else None
        self.value = float(value)

    def forward(self, state: IterationState) -> torch.Tensor | None:
        if state.iteration < self.at:
            return None
        if self.images is not None and state.sample.name not in self.images:
            return None
        return self.value * state.image.mean()
