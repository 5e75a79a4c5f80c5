r"""Trains the ``synthetic`` supervisor g on generated blurry/sharp pairs (never on Levin).

.. code-block:: bash

    OMP_NUM_THREADS=1 python -m weakdeblur.train_supervisor name=synthetic train.steps=20000
    # later: the same command resumes from outputs/train_supervisor/synthetic/checkpoint.pt

The objective is the mean absolute error of the restored patch,
:math:`\min_\theta \mathbb E\,\|g_\theta(y) - x\|_1`, with AdamW, a linear
warm-up and a cosine decay of the learning rate over ``train.steps``. Data:
:class:`weakdeblur.data.synthetic.BlurredPatches`. Every ``checkpoint_every``
steps (and on SIGTERM/SIGINT or after ``max_minutes``) the model, optimiser and
step are saved, so a later session continues where this one stopped; the
deployable weights (``weights.pt``, and ``export`` if set) are written too.
Every ``eval.every`` steps g(y) alone is scored on the 32 Levin images with the
aligned protocol — for monitoring only: the shipped weights are the last ones,
never picked by their Levin score.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from weakdeblur.data.synthetic import BlurredPatches
from weakdeblur.supervisors.checkpoint import load_checkpoint
from weakdeblur.supervisors.errors import SupervisorError
from weakdeblur.supervisors.synthetic import SyntheticNet, architecture, save_weights

log = logging.getLogger(__name__)
EXIT_INTERRUPTED = 130  # stopped by SIGTERM/SIGINT after checkpointing (as weakdeblur.run)
_BLURRY_SCORES: dict[tuple[str, str], dict[str, float]] = {}  # the inputs' scores never change


@dataclass
class TrainSettings:
    batch: int = 8
    steps: int = 20000
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup: int = 200
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.9
    refresh_every: int = 20
    log_every: int = 50
    checkpoint_every: int = 500
    max_minutes: float | None = None
    bf16: bool = False

    def __post_init__(self):
        if not isinstance(self.bf16, bool):
            raise ValueError(f"train.bf16 must be true or false; got {self.bf16!r}")

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``steps``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = min((step - self.warmup) / max(self.steps - self.warmup, 1), 1.0)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


def evaluate_on_levin(net: SyntheticNet, root: str | Path, kernel_sizes) -> dict:
    """Aligned PSNR/SSIM of g(y) alone (and of y) on every Levin image."""
    from weakdeblur.data.datasets import LevinDataset
    from weakdeblur.evaluation import Evaluator
    from weakdeblur.metrics import LPIPSMetric

    evaluator = Evaluator(lpips=LPIPSMetric(enabled=False))
    was_training = net.training
    net.eval()
    rows = []
    with torch.no_grad():
        for sample in LevinDataset(root, kernel_sizes):
            restored = net(sample.blurry).clamp(0, 1)
            score = evaluator.image_scores(restored, sample.sharp, with_lpips=False)
            key = (str(root), sample.name)
            if key not in _BLURRY_SCORES:
                _BLURRY_SCORES[key] = evaluator.image_scores(
                    sample.blurry, sample.sharp, with_lpips=False
                )
            blurry = _BLURRY_SCORES[key]
            rows.append(
                {
                    "name": sample.name,
                    "psnr": score["psnr"],
                    "ssim": score["ssim"],
                    "blurry_psnr": blurry["psnr"],
                    "blurry_ssim": blurry["ssim"],
                }
            )
    net.train(was_training)
    count = max(len(rows), 1)
    return {
        "psnr": sum(r["psnr"] for r in rows) / count,
        "ssim": sum(r["ssim"] for r in rows) / count,
        "blurry_psnr": sum(r["blurry_psnr"] for r in rows) / count,
        "blurry_ssim": sum(r["blurry_ssim"] for r in rows) / count,
        "images": rows,
    }


class SupervisorTrainer:
    """Plain training loop (no Hydra): ``step()`` draws a batch and updates the net."""

    def __init__(
        self,
        net: SyntheticNet,
        data: BlurredPatches,
        settings: TrainSettings | None = None,
    ):
        self.net = net
        self.data = data
        self.settings = settings or TrainSettings()
        s = self.settings
        self.optimizer = torch.optim.AdamW(
            net.parameters(), lr=s.lr, betas=(s.beta1, s.beta2), weight_decay=s.weight_decay
        )
        self.step_count = 0
        self.elapsed = 0.0  # training seconds over all sessions

    @staticmethod
    def loss(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        return (restored.float() - sharp).abs().mean()

    def forward(self, blurry: torch.Tensor) -> torch.Tensor:
        """g(y); under ``bf16`` the network runs in bfloat16 autocast (weights, optimiser
        state and the loss stay float32)."""
        with torch.autocast(blurry.device.type, dtype=torch.bfloat16, enabled=self.settings.bf16):
            return self.net(blurry)

    def step(self) -> float:
        s = self.settings
        if s.refresh_every and self.step_count % s.refresh_every == 0 and self.step_count:
            self.data.refresh()
        blurry, sharp = self.data.batch(s.batch)
        for group in self.optimizer.param_groups:
            group["lr"] = s.lr_at(self.step_count)
        self.net.train()
        loss = self.loss(self.forward(blurry), sharp)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 0.5)
        self.optimizer.step()
        self.step_count += 1
        return float(loss.detach())

    @torch.no_grad()
    def batch_loss(self, blurry: torch.Tensor, sharp: torch.Tensor) -> float:
        self.net.eval()
        value = float(self.loss(self.forward(blurry), sharp))
        self.net.train()
        return value

    def state_dict(self) -> dict:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step_count,
            "elapsed": self.elapsed,
            "architecture": architecture(self.net),
        }

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        torch.save(self.state_dict(), temporary)
        temporary.replace(path)

    def load(self, path: str | Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["architecture"] != architecture(self.net):
            raise ValueError(
                f"checkpoint {path} holds another architecture: "
                f"{architecture_difference(state['architecture'], architecture(self.net))} "
                "(another out_dir starts afresh)"
            )
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = int(state["step"])
        self.elapsed = float(state["elapsed"])


def architecture_difference(found: dict, wanted: dict) -> str:
    """``"width 16 (config: 8), ..."``: the keys where a file's architecture differs."""
    return ", ".join(
        f"{key} {found.get(key)} (config model.{key}: {value})"
        for key, value in wanted.items()
        if found.get(key) != value
    )


def start_from_weights(net: SyntheticNet, path: str | Path) -> None:
    """Loads weights into ``net``, the fine-tuning start: a deployable weights file (the
    shipped ``synthetic.pt``, a run's ``weights.pt``) or a run's ``checkpoint.pt`` (its model
    only). The file must describe the same architecture as the config."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(
            f"init_weights: no file {path} (give a weights.pt or checkpoint.pt written by "
            "train_supervisor, or the shipped weakdeblur/weights/synthetic.pt)"
        )
    state = load_checkpoint(path, "init_weights")
    # a checkpoint keeps the model under "model", a weights file under "params"
    params = state.get("model", state.get("params")) if isinstance(state, dict) else None
    if params is None or "architecture" not in state:
        raise ValueError(
            f"init_weights {path} is neither a weights file nor a checkpoint of train_supervisor"
        )
    found = state["architecture"]
    if found != architecture(net):
        raise ValueError(
            f"init_weights {path} holds another architecture: "
            f"{architecture_difference(found, architecture(net))}"
        )
    net.load_state_dict(params)


def _append_json(path: Path, row: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


@dataclass
class TrainResult:
    out: Path  # the output folder (checkpoint.pt, weights.pt, train.jsonl, levin.jsonl)
    step: int  # the step reached
    interrupted: bool  # stopped by SIGTERM/SIGINT before train.steps


def train(cfg: DictConfig) -> TrainResult:
    """Runs (or resumes) training as configured."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = TrainSettings(**OmegaConf.to_container(cfg.train, resolve=True))
    torch.manual_seed(cfg.seed)
    net = SyntheticNet(**OmegaConf.to_container(cfg.model, resolve=True))
    checkpoint = out / "checkpoint.pt"
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    # the data stream depends on the seed and the step it starts from
    trainer = SupervisorTrainer(net, None, settings)  # type: ignore[arg-type]
    if cfg.resume and checkpoint.is_file():
        trainer.load(checkpoint)
        log.info("resumed from %s at step %d", checkpoint, trainer.step_count)
    elif cfg.get("init_weights"):
        start_from_weights(net, cfg.init_weights)
        log.info("started from the weights %s (fresh optimiser and schedule)", cfg.init_weights)
    trainer.data = BlurredPatches(**data_cfg, seed=[int(cfg.seed), trainer.step_count])
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    parameters = sum(p.numel() for p in net.parameters())
    log.info("net: %s, %d parameters", architecture(net), parameters)

    stop = {"now": False}

    def request_stop(signum, _frame):
        log.info("signal %d: stopping after this step", signum)
        stop["now"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def save_all() -> None:
        trainer.save(checkpoint)
        metadata = {
            "step": trainer.step_count,
            "train_seconds": round(trainer.elapsed, 1),
            "seed": int(cfg.seed),
            "parameters": parameters,
            "command": "python -m weakdeblur.train_supervisor",
        }
        save_weights(net, out / "weights.pt", metadata)
        if cfg.export:
            save_weights(net, cfg.export, metadata)

    evaluated_at = {"step": -1}
    can_evaluate = bool(cfg.eval.enabled) and Path(cfg.eval.root).is_dir()
    if cfg.eval.enabled and not can_evaluate:
        log.warning(
            "no Levin folder at %s: the monitoring evaluation is off (set WEAKDEBLUR_DATA, "
            "eval.root=PATH, or eval.enabled=false to silence this)",
            cfg.eval.root,
        )

    def evaluate() -> None:
        if not can_evaluate:
            return
        if evaluated_at["step"] == trainer.step_count:  # the final step was just scored
            return
        evaluated_at["step"] = trainer.step_count
        started = time.perf_counter()
        scores = evaluate_on_levin(net, cfg.eval.root, list(cfg.eval.kernel_sizes))
        row = {"step": trainer.step_count, "train_seconds": round(trainer.elapsed, 1)}
        row.update(scores)
        row["eval_seconds"] = round(time.perf_counter() - started, 1)
        _append_json(out / "levin.jsonl", row)
        log.info(
            "levin step %d: g(y) %.2f dB / %.4f (blurry %.2f dB / %.4f)",
            trainer.step_count,
            scores["psnr"],
            scores["ssim"],
            scores["blurry_psnr"],
            scores["blurry_ssim"],
        )

    session_start = time.perf_counter()
    running, count = 0.0, 0
    try:
        while trainer.step_count < settings.steps and not stop["now"]:
            began = time.perf_counter()
            running += trainer.step()
            count += 1
            trainer.elapsed += time.perf_counter() - began
            step = trainer.step_count
            if step % settings.log_every == 0:
                row = {
                    "step": step,
                    "loss": running / count,
                    "lr": trainer.optimizer.param_groups[0]["lr"],
                    "train_seconds": round(trainer.elapsed, 1),
                }
                _append_json(out / "train.jsonl", row)
                log.info(
                    "step %d loss %.5f lr %.2e %.0fs", step, row["loss"], row["lr"], trainer.elapsed
                )
                running, count = 0.0, 0
            if step % settings.checkpoint_every == 0:
                save_all()
            if cfg.eval.every and step % cfg.eval.every == 0:
                evaluate()
            if (
                settings.max_minutes is not None
                and time.perf_counter() - session_start > 60 * settings.max_minutes
            ):
                log.info("max_minutes reached")
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    save_all()
    if can_evaluate and cfg.eval.final and stop["now"]:
        log.info("stopped by a signal: the final Levin evaluation is skipped")
    elif cfg.eval.final:
        evaluate()
    log.info(
        "stopped at step %d of %d after %.0f training seconds; weights: %s",
        trainer.step_count,
        settings.steps,
        trainer.elapsed,
        out / "weights.pt",
    )
    return TrainResult(out, trainer.step_count, bool(stop["now"]))


@hydra.main(config_path="../conf", config_name="train_supervisor", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        result = train(cfg)
    except (ValueError, SupervisorError) as error:  # a checkpoint or init_weights that does not fit
        log.error("%s", error)
        sys.exit(2)
    if result.interrupted:  # checkpointed; re-running the command resumes
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    from weakdeblur.runtime.preflight import run_hydra_main

    run_hydra_main(main, Path(__file__).resolve().parents[1] / "conf", "train_supervisor")
