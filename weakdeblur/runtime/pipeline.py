"""One image's pipeline: solve, score, record.

:class:`ImagePipeline` takes a loaded sample and gives back its record (the ``metrics.json`` of
the image: the solver's outcome, the scores against the ground truth where it exists, the
stopping rule's diagnosis, the supervisor's own scores) and its :class:`~weakdeblur.types.Result`,
telling the trackers as it goes. The entry point (:mod:`weakdeblur.run`) loops over images
with it, and a portfolio (:mod:`weakdeblur.runtime.portfolio`) runs it once per candidate. It knows
nothing of Hydra or of folders: resume, locks and the run summary stay with its callers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from weakdeblur.colour import ColourView
from weakdeblur.data.sample import Sample
from weakdeblur.detection import panel_records, stopping_record
from weakdeblur.evaluation import Evaluator
from weakdeblur.metrics import kernel_error
from weakdeblur.runtime.tracking import Tracker
from weakdeblur.solver import Solver
from weakdeblur.stopping import PolicyPanel
from weakdeblur.types import Result

log = logging.getLogger("weakdeblur")


def result_record(result: Result) -> dict[str, Any]:
    """The solver's outcome as record entries (status, iterations, time, gate, warm start)."""
    return {
        "status": result.status,
        "message": result.message,
        "iterations": result.iterations,
        "returned_iteration": result.returned_iteration,
        "stopped_early": result.stopped_early,
        "seconds": result.seconds,
        **({"gate": result.gate} if result.gate is not None else {}),
        **({"kernel_start": result.kernel_start} if result.kernel_start is not None else {}),
    }


@dataclass
class ImagePipeline:
    """Solve one loaded sample with ``solver`` (or ``solve``, e.g. a batched runner's), score
    it with ``evaluator`` and report it to ``trackers``.

    ``color`` is the colour mode (:mod:`weakdeblur.colour`), ``seed_mode`` the random start
    (``seeded`` or ``reference``), ``environment`` what every record carries about the machine.
    """

    solver: Solver
    evaluator: Evaluator
    trackers: Tracker
    color: str = "grey"
    seed_mode: str = "seeded"
    environment: dict[str, Any] | None = None
    solve: Callable[..., Result] | None = None

    def run(self, sample: Sample, seed: int, record: dict[str, Any]) -> tuple[dict, Result]:
        """Solve ``sample`` from ``seed``; return ``record`` completed, and the result (its image
        in the solver's view: luminance for ``color=y``)."""
        solver, evaluator, trackers = self.solver, self.evaluator, self.trackers
        record = {
            **record,
            "kernel_size": list(sample.kernel_size),
            "image_size": list(sample.blurry.shape[-2:]),
            **({"environment": self.environment} if self.environment is not None else {}),
        }
        view = ColourView.of(sample, self.color)  # color=y: solve on luminance, show in colour
        sample = view.solve
        trackers.start_image(view.show, record)
        result = (self.solve or solver.run)(
            sample,
            seed=seed,
            on_log=lambda entry: trackers.log(
                view.show, replace(entry, image=view.colour(entry.image))
            ),
            evaluate=evaluator.progress(sample),
            seed_mode=self.seed_mode,
        )
        record.update(result_record(result))
        if result.status != "ok":
            log.error("%s: %s", sample.name, result.message)
        if result.gate is not None and not result.gate["trusted"]:
            log.info("%s: the gate distrusts g %s: ran as SelfDeblur", sample.name, result.gate)
        record.update(evaluator.final(sample, result.image, result.kernel))
        if result.status == "ok":
            record.update(self._stopping(sample, result, record.get("psnr")))
        result = self._with_supervisor(sample, result, record)
        trackers.end_image(view.show, view.result(result), record)
        return record, result

    def _stopping(self, sample: Sample, result: Result, psnr: float | None) -> dict[str, Any]:
        """How the stopping rule did (and every rule of a panel, as if alone)."""
        iterations = self.solver.optim.iterations
        stopping = result.policy if result.policy is not None else self.solver.stopping
        entries = stopping_record(
            result.history, iterations, result.iterations, psnr, stopping.name
        )
        if isinstance(stopping, PolicyPanel):
            entries["panel"] = panel_records(
                stopping.decisions(),
                self.evaluator.progress(sample),
                result.history,
                iterations,
                result.seconds,
                result.iterations,
            )
            if stopping.unavailable:  # rules that could not run on this image
                entries["panel_left_out"] = dict(stopping.unavailable)
        return entries

    def _with_supervisor(self, sample: Sample, result: Result, record: dict[str, Any]) -> Result:
        """The supervisor's own estimate (x̄, and k̄ where g gives one) scored into ``record``,
        k̄ attached to the result."""
        supervisor = self.solver.supervisor
        supervised_kernel = supervisor.kernel_estimate(sample) if supervisor is not None else None
        if supervised_kernel is not None:
            result = replace(result, supervised_kernel=supervised_kernel.float().cpu())
            if sample.kernel is not None and sample.kernel.ndim == 4:
                record["supervised_kernel_error"] = kernel_error(supervised_kernel, sample.kernel)
        if result.supervised is not None and sample.sharp is not None:
            supervised = self.evaluator.image_scores(
                result.supervised, sample.sharp.float().cpu(), with_lpips=False
            )
            record["supervised_psnr"] = supervised["psnr"]
            record["supervised_ssim"] = supervised["ssim"]
        return result
