r"""Batched multi-image optimisation: B images fitted at once, each exactly on its own.

For images :math:`y_1, \dots, y_B` of one size and one kernel size, the
:class:`BatchedSolver` minimises

.. math::

    \sum_{b=1}^{B} \mathcal L_b(\theta_b), \qquad
    \mathcal L_b = \mathcal{L}_{\text{fid}}\big(k_b \star x_b,\ y_b\big) + \sum_j \lambda_j(t)\, \mathcal L_{j,b},

where image :math:`b` has its *own* parameters :math:`\theta_b`. Since
:math:`\partial \sum_c \mathcal L_c / \partial \theta_b = \partial \mathcal L_b / \partial \theta_b`
and Adam acts elementwise, every image receives exactly the update it would
receive alone. The B networks are run as one (:func:`stack_networks`):

* a convolution with weights :math:`W_b` becomes one convolution with
  ``groups = B`` over ``B·C`` channels (input reshaped from ``(B, C, H, W)`` to
  ``(1, B·C, H, W)``);
* a BatchNorm over ``C`` channels becomes one over ``B·C`` channels on the same
  ``(1, B·C, H, W)`` view, i.e. statistics per image and channel, as for a
  single image (batch dimension 1);
* a linear layer becomes a batched matrix product;
* everything else (padding, activations, upsampling, concatenation, the
  non-local attention) already acts per batch element.

The stacked weights are copies of B independently seeded single networks, and
each image draws its input noise from its own generator, seeded as
:class:`weakdeblur.solver.Solver` would seed it; so a batched run and B
one-at-a-time runs with the same seeds give the same images up to float
round-off (``tests/test_batched.py``).

Each image may also bring its own :class:`~weakdeblur.solver.Solver` (``solvers``): its
losses :math:`\mathcal L_{j,b}` and their weights, supervisor, stopping rule and warm start
are then its own, as for the arms of a portfolio (``selfdeblur`` beside ``weak_rec_es``). The
sum above still separates, so each image still gets its own update; what must be shared is
what is stacked or stepped together: the networks' architecture, the optimiser and input
settings, the device and the speed settings (:func:`batchable`).

Images are grouped by (observation size, kernel size) (:func:`group_by_size`):
exact, and no padding or masking. An image whose stopping rule fires (or whose
loss turns non-finite) keeps the iterate chosen at that point; it stays in the
stacked network until the whole group has stopped (its loss no longer enters
the sum), so it only costs compute. Each image's ``seconds`` is its share of the batch's
time (the batch's wall time over B), so summing them over images gives the batch's cost.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from weakdeblur.data.sample import Sample
from weakdeblur.physics import crop_to_observed
from weakdeblur.seeding import SeedModeError
from weakdeblur.solver import Solver, log_record, non_finite, trusted
from weakdeblur.stopping import Check, PolicyError, StoppingPolicy, start_policy
from weakdeblur.types import IterationState, LogRecord, Result


class GroupedConv2d(nn.Module):
    """B ``Conv2d`` layers of one shape as one grouped convolution on ``(B, C, H, W)``."""

    def __init__(self, convs: Sequence[nn.Conv2d]):
        super().__init__()
        first = convs[0]
        if first.padding_mode != "zeros" or isinstance(first.padding, str):
            raise ValueError("stack_networks supports zero-padded Conv2d with integer padding")
        self.weight = nn.Parameter(torch.cat([conv.weight.detach() for conv in convs]).clone())
        self.bias = (
            nn.Parameter(torch.cat([conv.bias.detach() for conv in convs]).clone())
            if first.bias is not None
            else None
        )
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.groups = first.groups * len(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        out = F.conv2d(
            x.reshape(1, -1, *x.shape[-2:]),
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        return out.reshape(batch, -1, *out.shape[-2:])


class GroupedBatchNorm2d(nn.Module):
    """B training-mode ``BatchNorm2d`` layers (batch of one each) as one over ``B·C`` channels."""

    def __init__(self, norms: Sequence[nn.BatchNorm2d]):
        super().__init__()
        first = norms[0]
        if not first.training:
            raise ValueError(
                "stack_networks supports BatchNorm in training mode (batch statistics)"
            )
        self.eps = first.eps
        self.weight = nn.Parameter(torch.cat([norm.weight.detach() for norm in norms]).clone())
        self.bias = nn.Parameter(torch.cat([norm.bias.detach() for norm in norms]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.batch_norm(
            x.reshape(1, -1, *x.shape[-2:]), None, None, self.weight, self.bias, True, 0.0, self.eps
        )
        return out.reshape(x.shape)


class GroupedLinear(nn.Module):
    """B ``Linear`` layers of one shape applied row-wise to a ``(B, in)`` input."""

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).clone())
        self.bias = (
            nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).clone())
            if layers[0].bias is not None
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.bmm(x.unsqueeze(1), self.weight.transpose(1, 2)).squeeze(1)
        return out + self.bias if self.bias is not None else out


_GROUPED = {nn.Conv2d: GroupedConv2d, nn.BatchNorm2d: GroupedBatchNorm2d, nn.Linear: GroupedLinear}


def stack_networks(networks: Sequence[nn.Module]) -> nn.Module:
    """One network computing ``networks[b]`` on batch element ``b`` (see the module docstring).

    The networks must share one architecture; their parameters are copied (the
    originals are left alone). Raises ``ValueError`` for a layer with
    parameters it cannot group.
    """
    signatures = [network_signature(net) for net in networks]
    if any(other != signatures[0] for other in signatures[1:]):
        raise ValueError("stack_networks needs networks of one architecture")
    template = copy.deepcopy(networks[0])
    for name, module in list(template.named_modules()):
        grouped = _GROUPED.get(type(module))
        if grouped is None:
            if any(True for _ in module.parameters(recurse=False)):
                raise ValueError(f"cannot stack layer {name} ({type(module).__name__})")
            continue
        replacement = grouped([network.get_submodule(name) for network in networks])
        parent_name, _, child = name.rpartition(".")
        setattr(
            template.get_submodule(parent_name) if parent_name else template, child, replacement
        )
    return template


def network_signature(network: nn.Module) -> list[tuple]:
    """What makes two networks one architecture: every layer's name, type and plain settings
    (an ``Upsample``'s mode, a padding, ...) and every parameter's name and shape. Stacked
    networks run the first one's layers, so networks that differ in anything else than their
    weights must not be stacked."""
    plain = (bool, int, float, str, tuple, type(None))
    layers = [
        (
            name,
            type(module).__qualname__,
            sorted(
                (key, value)
                for key, value in vars(module).items()
                if not key.startswith("_") and key != "training" and isinstance(value, plain)
            ),
        )
        for name, module in network.named_modules()
    ]
    return layers + [(name, tuple(p.shape)) for name, p in network.named_parameters()]


def architecture(solver: Solver, sample: Sample) -> list[tuple]:
    """The :func:`network_signature` of the two networks ``solver`` builds for ``sample``
    (built on the CPU, outside the random stream)."""
    with torch.random.fork_rng(devices=[]):
        nets = {
            "image": solver.image_generator(
                in_channels=solver.inputs.code_channels, out_channels=sample.blurry.shape[1]
            ),
            "kernel": solver.kernel_generator(
                kernel_size=sample.kernel_size, code_size=solver.inputs.kernel_code_size
            ),
        }
    return [(net, network_signature(module)) for net, module in nets.items()]


def batchable(solvers: Sequence[Solver], sample: Sample | None = None) -> str | None:
    """Why ``solvers`` cannot fit one batch together (one image each), or ``None`` when they
    can: they must share what is stacked or stepped together, i.e. the optimiser and input
    settings, the device and the speed settings, and (checked when ``sample`` is given;
    :func:`stack_networks` checks it anyway) the networks' architecture."""
    first = solvers[0]
    for name in ("optim", "inputs", "device", "speed"):
        if any(getattr(other, name) != getattr(first, name) for other in solvers[1:]):
            return f"their {name} settings differ"
    if sample is not None:
        distinct = list({id(solver): solver for solver in solvers}.values())
        shapes = architecture(distinct[0], sample)
        if any(architecture(other, sample) != shapes for other in distinct[1:]):
            return "their networks differ"
    return None


def size_key(sample: Sample) -> tuple[tuple[int, ...], tuple[int, int]]:
    return tuple(sample.blurry.shape[1:]), tuple(sample.kernel_size)


def group_by_size(samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
    """Indices of ``samples`` in groups of at most ``batch_size`` with one
    (observation size, kernel size) each, in order of first appearance."""
    by_key: dict[tuple, list[int]] = {}
    for index, sample in enumerate(samples):
        by_key.setdefault(size_key(sample), []).append(index)
    return [
        indices[start : start + batch_size]
        for indices in by_key.values()
        for start in range(0, len(indices), batch_size)
    ]


class _Track:
    """One image's bookkeeping in a batch: stopping rule, history, the iterate to return.

    Mirrors the logging / checking / returning logic of :meth:`Solver.run`.
    """

    def __init__(self, sample: Sample, solver: Solver, started: float):
        self.sample, self.solver, self.started = sample, solver, started
        self.policy: StoppingPolicy = copy.deepcopy(solver.stopping)  # this image's own rule
        self.stopping = self.policy  # what observes it: the rule, or its stand-in (gate)
        self.active = True
        self.history: list[dict[str, float]] = []
        self.last_finite: tuple | None = None
        self.status, self.message, self.stopped_early = "ok", "", False
        self.completed = 0
        self.supervised: torch.Tensor | None = None
        self.gate: dict | None = None  # the reliability gate's verdict (Solver.gated_terms)
        self.kernel_start: dict | None = None  # the warm start's fit, if any
        self.result: Result | None = None
        # set by BatchedSolver._start
        self.observed: torch.Tensor | None = None
        self.fidelity: Callable | None = None
        self.terms: list = []
        self.generator: torch.Generator | None = None


class BatchedSolver:
    """Fits B images at once with the settings of ``solver`` (same maths, same seeds).

    Args:
        solver: a :class:`Solver`; its generators, losses, stopping policy (copied
            per image), supervisor, physics, device and speed settings are used, unless
            :meth:`run` is given one solver per image.
    """

    def __init__(self, solver: Solver):
        self.solver = solver

    def run(
        self,
        samples: Sequence[Sample],
        seeds: Sequence[int] | int = 0,
        on_log: Callable[[int, LogRecord], None] | None = None,
        evaluate: Sequence[Callable[[torch.Tensor], dict[str, float]] | None] | None = None,
        solvers: Sequence[Solver] | None = None,
    ) -> list[Result]:
        """Optimise ``samples`` (one observation size and kernel size) jointly.

        Args:
            samples: the images; see :func:`group_by_size` to split a data set.
            seeds: one seed per image (or one for all), as for :meth:`Solver.run`.
            on_log: called with ``(index, LogRecord)`` at each image's logging steps.
            evaluate: per image, as ``evaluate`` of :meth:`Solver.run`.
            solvers: per image, the solver whose generators, losses, supervisor, stopping rule,
                warm start and physics it uses (default: this one for all); they must be
                :func:`batchable` and their networks of one architecture.
        """
        count = len(samples)
        seeds = [seeds] * count if isinstance(seeds, int) else list(seeds)
        evaluate = list(evaluate) if evaluate is not None else [None] * count
        solvers = list(solvers) if solvers is not None else [self.solver] * count
        if not (len(seeds) == len(evaluate) == len(solvers) == count) or count == 0:
            raise ValueError(
                "one seed (evaluate callback, solver) per sample, and at least one sample"
            )
        if len({size_key(sample) for sample in samples}) != 1:
            raise ValueError("a batch needs one image size and one kernel size (group_by_size)")
        reason = batchable(solvers)
        if reason is not None:
            raise ValueError(f"these solvers cannot share a batch: {reason}")
        solver = solvers[0]  # the shared settings: batchable checked that they agree
        settings, inputs, speed = solver.optim, solver.inputs, solver.speed
        budget, device = settings.iterations, solver.device
        speed.configure(device)
        started = time.perf_counter()
        # per-image set-up, in the order (and with the random draws) of Solver.run
        starts = [
            self._start(sample, seed, solver, started)
            for sample, seed, solver in zip(samples, seeds, solvers, strict=True)
        ]
        tracks, image_nets, kernel_nets, codes, kernel_codes = map(list, zip(*starts, strict=True))
        image_net = speed.prepare(stack_networks(image_nets), device)
        kernel_net = stack_networks(kernel_nets)
        del image_nets, kernel_nets, starts
        code = torch.cat(codes)
        kernel_code = torch.stack(kernel_codes)
        optimizer = torch.optim.Adam(
            [
                {"params": image_net.parameters(), "lr": settings.lr_image},
                {"params": kernel_net.parameters(), "lr": settings.lr_kernel},
            ]
        )
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, settings.milestone_iterations(), settings.gamma
        )
        noise = torch.empty_like(code)
        for iteration in range(budget):
            if not any(track.active for track in tracks):
                break
            for index, track in enumerate(tracks):
                noise[index].normal_(0.0, inputs.noise_std, generator=track.generator)
            optimizer.zero_grad(set_to_none=True)
            with speed.autocast(device):
                latents = image_net(code + noise)
                kernels = kernel_net(kernel_code)
            # losses in y's dtype (float32) under bf16 autocast, as in Solver.run
            dtype = tracks[0].observed.dtype
            latents, kernels = latents.to(dtype), kernels.to(dtype)
            totals, losses_of, blurred_of = {}, {}, {}
            for index, track in enumerate(tracks):
                if track.active:
                    latent, kernel = latents[index : index + 1], kernels[index : index + 1]
                    losses, blurred_of[index] = self._losses(track, iteration, latent, kernel)
                    totals[index], losses_of[index] = sum(losses.values()), losses
            sum(totals.values()).backward()
            optimizer.step()
            scheduler.step()
            completed = iteration + 1
            for index, total in totals.items():
                track = tracks[index]
                track.completed = completed
                self._bookkeep(
                    index,
                    track,
                    completed,
                    total,
                    latents[index : index + 1],
                    kernels[index : index + 1],
                    blurred_of[index],
                    losses_of[index],
                    optimizer,
                    on_log,
                    evaluate[index],
                )
        # each image's cost is its share of the batch's time (the sum over images is the batch's)
        results = [self._finish(track) for track in tracks]
        # each image is charged its share of the batch's time (the images' sum is the batch's)
        return [replace(result, seconds=result.seconds / count) for result in results]

    def _start(self, sample: Sample, seed: int, solver: Solver, started: float):
        """One image's start, with the random draws of :meth:`Solver.run`: its track (supervisor
        output, gate, terms, warm start, stopping rule, noise generator), its two networks and
        its two codes, as ``(track, G_x, G_k, z_x, z_k)``."""
        inputs, device = solver.inputs, solver.device
        supervisor, kernel_size = solver.supervisor, sample.kernel_size
        torch.manual_seed(seed)
        y = sample.blurry.to(device)
        height, width = solver.physics.latent_size(tuple(y.shape[-2:]), kernel_size)
        image_net = solver.image_generator(
            in_channels=inputs.code_channels, out_channels=y.shape[1]
        ).to(device)
        kernel_net = solver.kernel_generator(
            kernel_size=kernel_size, code_size=inputs.kernel_code_size
        ).to(device)
        code = inputs.code_scale * torch.rand(1, inputs.code_channels, height, width, device=device)
        kernel_code = inputs.code_scale * torch.rand(inputs.kernel_code_size, device=device)
        track = _Track(sample, solver, started)
        track.observed, track.fidelity = y, solver.fidelity.to(device)
        track.supervised, track.terms, track.gate = solver.supervise(sample, y, copy_terms=True)
        if solver.kernel_start is not None and trusted(track.gate):
            track.kernel_start = solver.kernel_start(kernel_net, kernel_code, sample, supervisor)
        try:
            track.stopping = start_policy(
                track.policy,
                solver.optim.iterations,
                sample,
                supervisor,
                track.supervised,
                trusted(track.gate),
            )
        except PolicyError as error:
            track.active = False
            track.result = Solver._unusable(
                sample, 0, "failed", str(error), started, [], track.supervised
            )
        track.generator = torch.Generator(device=device)
        track.generator.set_state(
            torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
        )
        return track, image_net, kernel_net, code, kernel_code

    def _losses(self, track: _Track, iteration: int, latent, kernel):
        """One image's loss terms at ``iteration`` (by name) and its ŷ, as in :meth:`Solver.run`."""
        solver = track.solver
        budget = solver.optim.iterations
        supervisor, observed = solver.supervisor, track.observed
        with solver.speed.autocast(solver.device):
            blurred = solver.physics(latent, kernel).to(observed.dtype)
        if track.terms and supervisor is not None:
            supervisor.prepare(track.sample)  # g serves every image of the batch in turn
        state = IterationState(
            iteration,
            budget,
            track.sample,
            observed,
            latent,
            crop_to_observed(latent, track.sample.kernel_size),
            kernel,
            blurred,
            supervisor,
            track.supervised,
        )
        return Solver.objective(state, track.fidelity, track.terms), blurred

    def _bookkeep(
        self,
        index,
        track,
        completed,
        total,
        latent,
        kernel,
        blurred,
        losses,
        optimizer,
        on_log,
        evaluate,
    ) -> None:
        """Solver.run's logging / checking step for one image of the batch."""
        settings, stopping = track.solver.optim, track.stopping
        budget = settings.iterations
        kernel_size = track.sample.kernel_size
        log_now = completed % settings.log_every == 0 or completed == budget
        check_now = completed % stopping.check_every == 0
        if not (log_now or check_now):
            return
        image = crop_to_observed(latent, kernel_size).detach()
        failure = non_finite(total, image, completed)
        if failure is not None:
            track.status, track.message, track.active = "failed", failure, False
            return
        kernel_d, blurred_d = kernel.detach(), blurred.detach()
        track.last_finite = (completed, image.clone(), kernel_d.clone(), blurred_d.clone())
        stop = False
        if check_now:
            supervisor = track.solver.supervisor
            if supervisor is not None:  # g's state is per image (the map g's y, x̄, k̄)
                supervisor.prepare(track.sample)
            stop = stopping.observe(
                Check(
                    completed,
                    budget,
                    image,
                    kernel_d,
                    blurred_d,
                    {k: v.detach() for k, v in losses.items()},
                    track.solver.supervisor,
                    track.supervised,
                )
            )
        if log_now or stop:
            record = log_record(
                completed,
                total,
                losses,
                optimizer,
                track.started,
                stopping.statistics() if check_now else {},
                (image, kernel_d, blurred_d),
                evaluate,
                settings.snapshot_every,
            )
            track.history.append(record.scalars)
            if on_log is not None:
                on_log(index, record)
        if stop:
            track.stopped_early = completed < budget
            track.active = False
        elif completed == budget:
            track.active = False

    @staticmethod
    def _finish(track: _Track) -> Result:
        if track.result is None:  # else the stopping rule refused the image
            track.result = Solver._finish(
                track.sample,
                track.stopping,
                track.last_finite,
                track.status,
                track.message,
                track.started,
                track.history,
                track.completed,
                track.stopped_early,
                track.supervised,
            )
        track.result.gate, track.result.kernel_start = track.gate, track.kernel_start
        track.result.policy = track.policy
        return track.result


class _GroupedRuns:
    """A solve hook answered from groups solved together: the first call (as :meth:`Solver.run`)
    for a member not solved yet solves its group (:meth:`_solve_group`); the other members'
    results and log records wait for their own calls and are replayed in order then."""

    runs_one = "image"  # what seed_mode=reference runs one at a time

    def __init__(self, solver: Solver):
        self.solver = solver
        self._solved: dict[object, tuple[Result, list[LogRecord]]] = {}

    def _solve_group(self, key, sample: Sample, seed: int, evaluate) -> None:
        raise NotImplementedError

    def _keep(self, keys: Sequence, samples: Sequence[Sample], seeds, evaluate, solvers=None):
        """Solve ``samples`` as one batch and keep each result and its log under its key."""
        records: list[list[LogRecord]] = [[] for _ in keys]
        results = BatchedSolver(solvers[0] if solvers else self.solver).run(
            samples,
            seeds,
            on_log=lambda index, record: records[index].append(record),
            evaluate=evaluate,
            solvers=solvers,
        )
        for key, result, logged in zip(keys, results, records, strict=True):
            self._solved[key] = (result, logged)

    def run(
        self,
        sample: Sample,
        seed: int = 0,
        on_log: Callable[[LogRecord], None] | None = None,
        evaluate: Callable[[torch.Tensor], dict[str, float]] | None = None,
        seed_mode: str = "seeded",
    ) -> Result:
        """As :meth:`Solver.run`. Only ``seed_mode="seeded"``: the reference's draws are those
        of one run at a time."""
        return self._answer(sample.name, sample, seed, on_log, evaluate, seed_mode)

    def _answer(self, key, sample, seed, on_log, evaluate, seed_mode) -> Result:
        """The result (and log records, replayed to ``on_log``) of the member ``key``."""
        if seed_mode != "seeded":
            raise SeedModeError(
                f"seed_mode={seed_mode} runs one {self.runs_one} at a time; set solver.batch_size=1"
            )
        if key not in self._solved:
            self._solve_group(key, sample, seed, evaluate)
        result, records = self._solved.pop(key)
        if on_log is not None:
            for record in records:
                on_log(record)
        return replace(result, name=sample.name)


class BatchedRuns(_GroupedRuns):
    """Batched solving for a runner that handles one image at a time (``solver.batch_size``).

    When the runner asks for an image that has not been solved yet, that image
    and the next pending images of the same size and kernel size (up to
    ``solver.speed.batch_size``) are solved together; their log records are
    kept and replayed, in order, when the runner asks for each of them. So the
    runner's trackers still see one image after the other.

    Args:
        solver: the :class:`Solver` (its ``speed.batch_size`` is the group size).
        names: the runner's image names, in its order.
        load: ``name -> (sample to solve, evaluate callback or None)``; an image
            whose loading raises is left out of the group (the runner meets the
            error on its own turn).
        skip: names the runner will not solve (e.g. complete on resume).
    """

    def __init__(
        self,
        solver: Solver,
        names: Sequence[str],
        load: Callable[[str], tuple[Sample, Callable | None]],
        skip: Callable[[str], bool] = lambda name: False,
    ):
        super().__init__(solver)
        self.names, self.load, self.skip = list(names), load, skip

    def _solve_group(self, key, sample: Sample, seed: int, evaluate) -> None:
        name = key  # the sample's, one of ``names``; every image gets ``seed``
        group = [(name, sample, evaluate)]
        size = size_key(sample)
        following = self.names[self.names.index(name) + 1 :] if name in self.names else []
        for other in following:
            if len(group) >= self.solver.speed.batch_size:
                break
            if other in self._solved or self.skip(other):
                continue
            try:
                other_sample, other_evaluate = self.load(other)
            except Exception:  # noqa: BLE001 - the runner reports it on that image's turn
                continue
            if size_key(other_sample) == size:
                group.append((other, other_sample, other_evaluate))
        names, samples, evaluates = zip(*group, strict=True)
        self._keep(names, list(samples), seed, list(evaluates))


class CandidateBatches(_GroupedRuns):
    """Batched solving of one image's candidates: a portfolio's arms × seeds.

    Each arm's pipeline gets the solve hook :meth:`solve_for` (called once per seed as
    :meth:`Solver.run` would be). The first call for a candidate not solved yet fits it
    together with the next ``pending`` candidates (up to its solver's ``speed.batch_size``)
    whose solvers are :func:`batchable` with its own, as one batch, each candidate with its own arm's solver
    (losses, supervisor, stopping rule): the seeds of one arm, and the arms that differ only in
    what they add to the loss and when they stop (``selfdeblur`` beside ``weak_rec_es``). The
    others' results and log records are kept and handed over, in order, on their own calls.
    Each candidate gets the update it would get alone (:class:`BatchedSolver`), so the
    candidates equal one-at-a-time runs up to float round-off. A batch is fitted on the sample
    and with the ``evaluate`` callback of the call that starts it: the candidates of one image
    share both (their samples differ only in their names).

    Args:
        pending: the candidates the caller will ask for, in its order (not the ones it reuses),
            as ``(arm, solver, seed)``.
    """

    runs_one = "candidate"

    def __init__(self, pending: Sequence[tuple[str, Solver, int]]):
        super().__init__(pending[0][1])
        self.pending = [(arm, seed) for arm, _, seed in pending]
        self.solvers = {arm: solver for arm, solver, _ in pending}
        self._architectures: dict[str, list[tuple]] = {}  # arm -> its networks' signature

    def run(self, *args, **kwargs) -> Result:
        raise TypeError("CandidateBatches answers per arm: use solve_for(arm) as the solve hook")

    def fits(self, arm: str, other: str, sample: Sample) -> bool:
        """Whether candidates of ``arm`` and ``other`` may share a batch (:func:`batchable`;
        each arm's networks are built once to compare them)."""
        if arm == other:
            return True
        if batchable([self.solvers[arm], self.solvers[other]]) is not None:
            return False
        for name in (arm, other):
            if name not in self._architectures:
                self._architectures[name] = architecture(self.solvers[name], sample)
        return self._architectures[arm] == self._architectures[other]

    def solve_for(self, arm: str) -> Callable[..., Result]:
        """``arm``'s solve hook, called as :meth:`Solver.run`."""

        def solve(sample, seed=0, on_log=None, evaluate=None, seed_mode="seeded") -> Result:
            return self._answer((arm, seed), sample, seed, on_log, evaluate, seed_mode)

        return solve

    def _solve_group(self, key, sample: Sample, seed: int, evaluate) -> None:
        later = self.pending[self.pending.index(key) + 1 :] if key in self.pending else []
        group, solver = [key], self.solvers[key[0]]
        for other in later:
            if len(group) >= solver.speed.batch_size:
                break
            if other not in self._solved and self.fits(key[0], other[0], sample):
                group.append(other)
        self._keep(
            group,
            [sample] * len(group),
            [s for _, s in group],
            [evaluate] * len(group),
            [self.solvers[arm] for arm, _ in group],
        )
