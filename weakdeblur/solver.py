r"""The per-image optimisation loop (SelfDeblur and its supervised variants).

Given a blurry observation :math:`y` and a kernel size :math:`(k_h, k_w)`,
two untrained generators are fitted jointly:

.. math::

    \min_{\theta_x, \theta_k}\ \mathcal{L}_{\text{fid}}\big(k \star x,\ y\big) + \sum_j \lambda_j(t)\, \mathcal{L}_j,
    \qquad x = G_x(z_x + \varepsilon_t),\ k = G_k(z_k),

with :math:`z_x \sim 0.1\,\mathcal U[0,1]^{8 \times (H+k_h-1) \times (W+k_w-1)}`
perturbed by :math:`\varepsilon_t \sim \mathcal N(0, 0.001^2)` at every
iteration, and :math:`z_k \sim 0.1\,\mathcal U[0,1]^{200}` fixed. Adam updates
both networks (learning rates 1e-2 and 1e-4), halved at fractions 0.4, 0.6 and
0.8 of the budget.

How the codes, the initial weights and the perturbations are drawn is the seed mode
(:mod:`weakdeblur.seeding`): ``seeded`` from ``seed``, or ``reference``, the reference
script's own fixed draws.

This module knows nothing of Hydra or W&B: it takes plain objects, and
reports to callbacks only at logging steps (the only host synchronisation).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from weakdeblur.data.sample import Sample
from weakdeblur.physics import UniformBlur, crop_to_observed
from weakdeblur.seeding import (
    check_seed_mode,
    follow_reference_arithmetic,
    perturbed,
    reference_start,
)
from weakdeblur.speed import SpeedSettings
from weakdeblur.stopping import Check, FixedBudget, PolicyError, StoppingPolicy, start_policy
from weakdeblur.supervisors.base import Supervisor
from weakdeblur.types import IterationState, LogRecord, LossTerm, Result

if TYPE_CHECKING:  # the default fidelity is built on demand (losses.py sits below this module)
    from weakdeblur.losses import FidelityLoss


@dataclass
class OptimSettings:
    """Optimiser and schedule; milestones are fractions of ``iterations``."""

    iterations: int = 5000
    lr_image: float = 1e-2
    lr_kernel: float = 1e-4
    milestones: Sequence[float] = (0.4, 0.6, 0.8)
    gamma: float = 0.5
    log_every: int = 100
    snapshot_every: int = 500

    def milestone_iterations(self) -> list[int]:
        return sorted({int(round(fraction * self.iterations)) for fraction in self.milestones})


@dataclass
class InputSettings:
    """The generators' inputs: z_x (``code_channels`` maps, uniform × ``code_scale``,
    perturbed by N(0, ``noise_std``²) each iteration) and z_k (``kernel_code_size``
    values, uniform × ``code_scale``, fixed)."""

    code_channels: int = 8
    kernel_code_size: int = 200
    code_scale: float = 0.1
    noise_std: float = 1e-3


class NonFiniteLoss(RuntimeError):
    pass


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def non_finite(total: torch.Tensor, image: torch.Tensor, completed: int) -> str | None:
    """Why the run must stop as failed (a NaN/inf loss or estimate), or ``None``."""
    if bool(torch.isfinite(total)) and bool(torch.isfinite(image).all()):
        return None
    return f"non-finite loss at iteration {completed} (loss {total.item()})"


def log_record(
    completed: int,
    total: torch.Tensor,
    losses: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    started: float,
    statistics: dict[str, float],
    estimate: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    evaluate: Callable[[torch.Tensor], dict[str, float]] | None,
    snapshot_every: int,
) -> LogRecord:
    """What a logging step records: losses, learning rate, seconds, the stopping rule's
    statistics, scores of x (``evaluate``) and CPU copies of (x, k, ŷ). The one place that
    synchronises with the host."""
    scalars = {"iteration": float(completed), "loss": float(total.detach())}
    scalars.update({name: float(value.detach()) for name, value in losses.items()})
    scalars["lr_image"] = optimizer.param_groups[0]["lr"]
    scalars["seconds"] = time.perf_counter() - started
    scalars.update(statistics)
    image, kernel, blurred = (tensor.float().cpu() for tensor in estimate)
    if evaluate is not None:
        scalars.update(evaluate(image))
    snapshot = snapshot_every > 0 and completed % snapshot_every == 0
    return LogRecord(completed, scalars, image, kernel, blurred, snapshot)


def trusted(verdict: dict | None) -> bool:
    """Whether the supervisor may be used on an image: no gate, or the gate trusts it."""
    return verdict is None or bool(verdict["trusted"])


class Solver:
    """Fits G_x and G_k to one sample.

    Args:
        image_generator: builds a fresh G_x; called with ``in_channels`` and ``out_channels``.
        kernel_generator: builds a fresh G_k; called with ``kernel_size`` and ``code_size``.
        fidelity: the data term (:class:`FidelityLoss`).
        optim: :class:`OptimSettings`.
        inputs: :class:`InputSettings` (the codes z_x, z_k).
        stopping: a :class:`StoppingPolicy` (default: fixed budget).
        terms: extra :class:`LossTerm` objects, summed into the objective.
        supervisor: the frozen network g (:class:`Supervisor`), or ``None``.
        physics: the forward model, ``physics(x, k) -> ŷ``.
        device: ``auto``, ``cpu``, ``cuda``, ...
        speed: :class:`weakdeblur.speed.SpeedSettings` (memory format, compile, bf16, ...).
        kernel_start: called as ``kernel_start(G_k, z_k, sample, supervisor)`` once the
            supervisor is prepared, before the joint optimisation (e.g.
            :class:`weakdeblur.kernel_start.KernelWarmStart`); what it returns (a dict of
            scalars) is kept in ``Result.kernel_start``; ``None``: G_k starts at random.
        gate: called as ``gate(sample, supervisor)`` once the supervisor is prepared; where
            its verdict says ``trusted: False`` the image runs without the terms that read
            the supervisor, without ``kernel_start``, and with a stopping rule that reads
            the supervisor replaced by the fixed budget (e.g.
            :class:`weakdeblur.reliability.StabilityGate`); the verdict is kept in
            ``Result.gate``.
    """

    def __init__(
        self,
        image_generator: Callable[..., nn.Module],
        kernel_generator: Callable[..., nn.Module],
        fidelity: FidelityLoss | None = None,
        optim: OptimSettings | None = None,
        inputs: InputSettings | None = None,
        stopping: StoppingPolicy | None = None,
        terms: Sequence[LossTerm] = (),
        supervisor: Supervisor | None = None,
        physics: nn.Module | None = None,
        device: str | torch.device = "auto",
        speed: SpeedSettings | None = None,
        kernel_start: Callable[..., object] | None = None,
        gate: Callable[..., dict] | None = None,
    ):
        self.image_generator = image_generator
        self.kernel_generator = kernel_generator
        if fidelity is None:
            from weakdeblur.losses import FidelityLoss

            fidelity = FidelityLoss()
        self.fidelity = fidelity
        self.optim = optim or OptimSettings()
        self.inputs = inputs or InputSettings()
        self.stopping = stopping or FixedBudget()
        self.terms = list(terms)
        self.supervisor = supervisor.freeze() if supervisor is not None else None
        self.physics = physics or UniformBlur()
        self.device = resolve_device(device)
        self.speed = speed or SpeedSettings()
        self.kernel_start = kernel_start
        self.gate = gate

    def run(
        self,
        sample: Sample,
        seed: int = 0,
        on_log: Callable[[LogRecord], None] | None = None,
        evaluate: Callable[[torch.Tensor], dict[str, float]] | None = None,
        seed_mode: str = "seeded",
    ) -> Result:
        """Optimise one sample.

        Args:
            sample: the observation and its kernel size.
            seed: seeds the codes, the network initialisation and the input noise
                (``seed_mode="seeded"``; ignored under ``"reference"``).
            on_log: called with a :class:`LogRecord` every ``log_every`` iterations.
            evaluate: maps the current x (y-sized, on the CPU) to extra scalars
                (e.g. PSNR against ground truth), at logging steps only.
            seed_mode: how the random start is drawn, ``seeded`` or ``reference``
                (SelfDeblur's own draws; :mod:`weakdeblur.seeding`).
        """
        check_seed_mode(seed_mode)
        settings, inputs = self.optim, self.inputs
        budget = settings.iterations
        device = self.device
        torch.manual_seed(seed)
        started = time.perf_counter()
        speed = self.speed
        speed.configure(device)

        observed = sample.blurry.to(device)
        kernel_size = sample.kernel_size
        height, width = self.physics.latent_size(tuple(observed.shape[-2:]), kernel_size)
        image_net = self.image_generator(
            in_channels=inputs.code_channels, out_channels=observed.shape[1]
        )
        kernel_net = self.kernel_generator(
            kernel_size=kernel_size, code_size=inputs.kernel_code_size
        )
        code_shape = (1, inputs.code_channels, height, width)
        if seed_mode == "reference":  # redraws both networks' weights, on the CPU
            code, kernel_code = reference_start(
                image_net, kernel_net, code_shape, inputs.kernel_code_size, inputs.code_scale
            )
            code, kernel_code = code.to(device), kernel_code.to(device)
        image_net = speed.prepare(image_net.to(device), device)
        kernel_net = kernel_net.to(device)
        if seed_mode == "seeded":
            code = inputs.code_scale * torch.rand(code_shape, device=device)
            kernel_code = inputs.code_scale * torch.rand(inputs.kernel_code_size, device=device)
        fidelity = self.fidelity.to(device)
        follow_reference_arithmetic(fidelity, seed_mode == "reference")
        supervisor = self.supervisor
        supervised, terms, verdict = self.supervise(sample, observed)
        fit = None
        if self.kernel_start is not None and trusted(verdict):
            fit = self.kernel_start(kernel_net, kernel_code, sample, supervisor)

        optimizer = torch.optim.Adam(
            [
                {"params": image_net.parameters(), "lr": settings.lr_image},
                {"params": kernel_net.parameters(), "lr": settings.lr_kernel},
            ]
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, settings.milestone_iterations(), settings.gamma
        )
        try:
            stopping = start_policy(
                self.stopping, budget, sample, supervisor, supervised, trusted(verdict)
            )
        except PolicyError as error:
            result = self._unusable(sample, 0, "failed", str(error), started, [], supervised)
            result.gate, result.kernel_start = verdict, fit
            return result

        history: list[dict[str, float]] = []
        last_finite: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        status, message, stopped_early = "ok", "", False
        completed = 0
        noise = torch.empty_like(code)
        for iteration in range(budget):
            code_in = perturbed(code, noise, inputs.noise_std, seed_mode)
            optimizer.zero_grad(set_to_none=True)
            with speed.autocast(device):
                latent = image_net(code_in)
                kernel = kernel_net(kernel_code)
                blurred = self.physics(latent, kernel)
            # under bf16 autocast the networks' outputs are bf16: every loss, the SSIM, the
            # stopping statistics and the metrics see y's dtype (float32); a no-op otherwise
            latent, kernel, blurred = (t.to(observed.dtype) for t in (latent, kernel, blurred))
            losses = self.objective(
                IterationState(
                    iteration,
                    budget,
                    sample,
                    observed,
                    latent,
                    crop_to_observed(latent, kernel_size),
                    kernel,
                    blurred,
                    supervisor,
                    supervised,
                ),
                fidelity,
                terms,
            )
            total = sum(losses.values())
            total.backward()
            optimizer.step()
            scheduler.step()
            completed = iteration + 1

            log_now = completed % settings.log_every == 0 or completed == budget
            check_now = completed % stopping.check_every == 0
            if not (log_now or check_now):
                continue
            image = crop_to_observed(latent, kernel_size).detach()
            failure = non_finite(total, image, completed)
            if failure is not None:
                status, message = "failed", failure
                break
            kernel_d, blurred_d = kernel.detach(), blurred.detach()
            last_finite = (completed, image.clone(), kernel_d.clone(), blurred_d.clone())
            stop = False
            if check_now:
                stop = stopping.observe(
                    Check(
                        completed,
                        budget,
                        image,
                        kernel_d,
                        blurred_d,
                        {k: v.detach() for k, v in losses.items()},
                        supervisor,
                        supervised,
                    )
                )
            if log_now or stop:
                record = log_record(
                    completed,
                    total,
                    losses,
                    optimizer,
                    started,
                    stopping.statistics() if check_now else {},
                    (image, kernel_d, blurred_d),
                    evaluate,
                    settings.snapshot_every,
                )
                history.append(record.scalars)
                if on_log is not None:
                    on_log(record)
            if stop:
                stopped_early = completed < budget
                break

        result = self._finish(
            sample,
            stopping,
            last_finite,
            status,
            message,
            started,
            history,
            completed,
            stopped_early,
            supervised,
        )
        result.gate, result.kernel_start = verdict, fit
        return result

    def supervise(
        self, sample: Sample, observed: torch.Tensor, copy_terms: bool = False
    ) -> tuple[torch.Tensor | None, list[LossTerm], dict | None]:
        """Prepare the supervision of one image: g's output x̄ = g(y) (detached, ``None``
        without g), the loss terms the gate keeps, each prepared for this image, and the
        gate's verdict. ``copy_terms`` prepares copies of the solver's terms, so that several
        images can hold theirs at once (batched runs)."""
        supervisor, supervised = self.supervisor, None
        if supervisor is not None:
            supervisor.to(self.device)
            supervisor.prepare(sample)
            with self.speed.constants():
                supervised = supervisor(observed).detach()
            supervised = supervised.clone()  # a normal tensor: autograd may save it
        terms, verdict = self.gated_terms(sample, supervisor)
        if copy_terms:
            terms = copy.deepcopy(terms)
        for term in terms:
            term.to(self.device)
            term.prepare(sample, observed, supervisor, supervised)
        return supervised, terms, verdict

    @staticmethod
    def objective(
        state: IterationState, fidelity: FidelityLoss, terms: Sequence[LossTerm]
    ) -> dict[str, torch.Tensor]:
        """The objective's terms at one iteration, by name: the data fit L_fid(ŷ, y), then
        every term that answers (a term may return ``None`` outside its schedule)."""
        losses = {
            "fidelity": fidelity(state.blurred, state.observed, state.iteration, state.budget)
        }
        for term in terms:
            value = term(state)
            if value is not None:
                losses[term.name] = value
        return losses

    def gated_terms(
        self, sample: Sample, supervisor: Supervisor | None
    ) -> tuple[list[LossTerm], dict | None]:
        """The loss terms for ``sample`` and the gate's verdict on the (prepared) supervisor:
        all terms without a gate or supervisor, or when the gate trusts g; otherwise only the
        terms that do not read the supervisor."""
        if self.gate is None or supervisor is None:
            return list(self.terms), None
        verdict = self.gate(sample, supervisor)
        if verdict["trusted"]:
            return list(self.terms), verdict
        return [term for term in self.terms if not term.uses_supervisor], verdict

    @classmethod
    def _finish(
        cls,
        sample: Sample,
        stopping: StoppingPolicy,
        last_finite: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor] | None,
        status: str,
        message: str,
        started: float,
        history: list[dict[str, float]],
        completed: int,
        stopped_early: bool,
        supervised: torch.Tensor | None,
    ) -> Result:
        """The image's result: the stopping rule's choice, else the last finite iterate."""
        if last_finite is None:
            if status == "failed":
                # nothing finite was ever logged: return the blurry input as the estimate
                return cls._unusable(
                    sample,
                    completed,
                    status,
                    message + "; no finite iterate",
                    started,
                    history,
                    supervised,
                )
            raise RuntimeError("solver finished without a logging step")  # unreachable
        returned_iteration, image, kernel_out, blurred_out = last_finite
        chosen = stopping.selected() if status == "ok" else None
        if chosen is not None:
            returned_iteration, image, kernel_out, blurred_out = (
                chosen.iteration,
                chosen.image,
                chosen.kernel,
                chosen.blurred,
            )
        return Result(
            name=sample.name,
            image=image.float().cpu(),
            kernel=kernel_out.float().cpu(),
            blurred=blurred_out.float().cpu(),
            iterations=completed,
            returned_iteration=returned_iteration,
            status=status,
            message=message,
            seconds=time.perf_counter() - started,
            history=history,
            stopped_early=stopped_early,
            supervised=supervised.float().cpu() if supervised is not None else None,
        )

    @staticmethod
    def _unusable(
        sample: Sample,
        completed: int,
        status: str,
        message: str,
        started: float,
        history: list[dict[str, float]],
        supervised: torch.Tensor | None,
    ) -> Result:
        """A result without an estimate: the blurry input and a centred delta kernel."""
        kernel_size = sample.kernel_size
        delta = torch.zeros(1, 1, *kernel_size)
        delta[..., kernel_size[0] // 2, kernel_size[1] // 2] = 1.0
        return Result(
            sample.name,
            sample.blurry.cpu(),
            delta,
            sample.blurry.cpu(),
            completed,
            0,
            status,
            message,
            time.perf_counter() - started,
            history,
            supervised=supervised.float().cpu() if supervised is not None else None,
        )
