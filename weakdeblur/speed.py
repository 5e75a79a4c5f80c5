"""Speed switches for the optimisation loop (``solver.*`` in the configuration).

Every switch keeps the mathematics of the loop; those that can change the
floating-point result (memory layout, compiled kernels, bf16, autotuned
convolution algorithms) are **off by default** and are checked against the
eager path by ``tests/test_speed.py``:

* ``channels_last``: G_x and its input in NHWC memory format;
* ``compile``: ``torch.compile`` of G_x (``compile_mode``: ``default``,
  ``reduce-overhead`` (CUDA graphs: cuts launch overhead on a GPU),
  ``max-autotune``, ...). A failure to compile (no C++ compiler, an unsupported
  op) warns once and falls back to the eager network;
* ``bf16``: autocast of the forward pass to bfloat16 (meant for GPUs);
* ``cudnn_benchmark``: cuDNN picks the fastest convolution algorithm (CUDA only);
* ``inference_constants`` (on): x̄ = g(y) is computed under
  :func:`torch.inference_mode` (same numbers as ``no_grad``);
* ``batch_size``: how many images :class:`weakdeblur.batched.BatchedSolver`
  fits at once in one process (``1`` = one at a time, the plain solver).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

log = logging.getLogger("weakdeblur")

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class SpeedSettings:
    """How the loop runs (not what it computes); see the module docstring."""

    batch_size: int = 1
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    bf16: bool = False
    cudnn_benchmark: bool = False
    inference_constants: bool = True

    def __post_init__(self):
        if int(self.batch_size) < 1:
            raise ValueError(f"solver.batch_size must be >= 1, got {self.batch_size}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"solver.compile_mode must be one of {', '.join(COMPILE_MODES)}; got {self.compile_mode!r}"
            )

    def configure(self, device: torch.device) -> None:
        """Process-wide backend flags (cuDNN autotuning)."""
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = bool(self.cudnn_benchmark)

    def prepare(self, network: nn.Module) -> nn.Module:
        """G_x in the requested memory format, compiled when asked (with an eager fallback)."""
        if self.channels_last:
            network = ChannelsLast(network)
        if self.compile:
            network = CompiledOrEager(network, self.compile_mode)
        return network

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The forward pass's autocast context (bf16 when asked, else nothing)."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def constants(self) -> contextlib.AbstractContextManager:
        """The context for values computed once per image (x̄ = g(y))."""
        return torch.inference_mode() if self.inference_constants else torch.no_grad()


class ChannelsLast(nn.Module):
    """A network stored, and fed, in channels-last (NHWC) memory format.

    The caller's tensors (codes, noise) keep their layout, so random draws are
    the same as on the default path; only the network's input is converted.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.contiguous(memory_format=torch.channels_last))


_compile_failed: set[str] = set()  # warn once per process


class CompiledOrEager(nn.Module):
    """``torch.compile(network)``; if compiling fails on the first call, the eager network.

    Compilation is lazy (it happens on the first forward pass), so the fallback
    is decided there. The parameters are the wrapped network's: optimisers see
    the same tensors either way.
    """

    def __init__(self, network: nn.Module, mode: str = "default"):
        super().__init__()
        self.network = network
        self.mode = mode
        self._compiled = None
        self._ok: bool | None = None

    def forward(self, *args, **kwargs):
        if self._ok is False:
            return self.network(*args, **kwargs)
        if self._compiled is None:
            self._compiled = torch.compile(
                self.network, mode=None if self.mode == "default" else self.mode
            )
        if self._ok:
            return self._compiled(*args, **kwargs)
        try:
            out = self._compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eagerly
            self._ok = False
            key = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            if key not in _compile_failed:
                _compile_failed.add(key)
                warnings.warn(
                    f"torch.compile failed ({key[:300]}); running G_x eagerly", stacklevel=2
                )
            return self.network(*args, **kwargs)
        self._ok = True
        return out


def worker_threads(jobs: int = 1) -> int:
    """Torch threads for one of ``jobs`` worker processes sharing this machine's cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(jobs)))


def set_threads(threads: int) -> None:
    """``threads`` intra-op threads and one inter-op thread (the loop has no parallel branches)."""
    torch.set_num_threads(int(threads))
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel work
        torch.set_num_interop_threads(1)
