"""Speed switches for the optimisation loop (``solver.*`` in the configuration).

Every switch keeps the mathematics of the loop; those that can change the
floating-point result (memory layout, compiled kernels, bf16, autotuned
convolution algorithms) are **off by default** and are checked against the
eager path by ``tests/test_speed.py``:

* ``channels_last``: G_x and its input in NHWC memory format: ``true``, ``false`` or ``auto``
  (on exactly where bf16 is on: oneDNN's bf16 convolutions are fastest in NHWC, 2.0–2.2× the
  baseline with bf16 on an AMX Xeon, while float32 NHWC gains 1.05× there and *loses* on an
  AVX2-only AMD EPYC, 0.64–0.72× of eager; docs/speed.md);
* ``compile``: ``torch.compile`` of G_x (``compile_mode``: ``default``,
  ``reduce-overhead`` (CUDA graphs: cuts launch overhead on a GPU),
  ``max-autotune``, ...). A failure to compile (no C++ compiler, an unsupported
  op) warns once and falls back to the eager network;
* ``bf16``: autocast of the forward pass (G_x, G_k, the forward model) to bfloat16:
  ``true``, ``false`` or ``auto`` (on where the device computes bf16 natively: a CPU with
  AVX512-BF16 or AMX, a CUDA device for which ``torch.cuda.is_bf16_supported()``; off
  elsewhere, where bf16 is emulated and slower; :func:`bf16_supported`). The resolved
  choice is logged once per process and device type. Only the networks run in bf16: the
  solver casts x, k and ŷ back to float32 before any loss, so losses, SSIM, stopping
  statistics and metrics are float32;
* ``cudnn_benchmark``: cuDNN picks the fastest convolution algorithm (CUDA only);
* ``tf32``: TensorFloat-32 (10-bit mantissa) in cuDNN convolutions and CUDA matrix products
  (Ampere and later). Off by default, so that a float32 run on a GPU computes in float32 as
  on a CPU (torch itself allows TF32 in cuDNN convolutions unless told otherwise);
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
    channels_last: bool | str = False  # true | false | auto (follows bf16)
    compile: bool = False
    compile_mode: str = "default"
    bf16: bool | str = False  # true | false | auto
    cudnn_benchmark: bool = False
    tf32: bool = False
    inference_constants: bool = True

    def __post_init__(self):
        if int(self.batch_size) < 1:
            raise ValueError(f"solver.batch_size must be >= 1, got {self.batch_size}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"solver.compile_mode must be one of {', '.join(COMPILE_MODES)}; got {self.compile_mode!r}"
            )
        for name in ("bf16", "channels_last"):
            if getattr(self, name) not in (True, False, "auto"):
                raise ValueError(
                    f"solver.{name} must be true, false or auto; got {getattr(self, name)!r}"
                )

    def uses_bf16(self, device: torch.device) -> bool:
        """Whether the forward pass runs in bf16 on ``device`` (``auto`` resolved, logged once)."""
        if self.bf16 != "auto":
            return bool(self.bf16)
        enabled, reason = bf16_supported(device)
        key = (device.type, enabled)
        if key not in _bf16_logged:
            _bf16_logged.add(key)
            log.info("solver.bf16=auto: %s on %s (%s)", "on" if enabled else "off", device, reason)
        return enabled

    def configure(self, device: torch.device) -> None:
        """Process-wide backend flags (cuDNN autotuning, TF32)."""
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = bool(self.cudnn_benchmark)
            torch.backends.cudnn.allow_tf32 = bool(self.tf32)
            torch.backends.cuda.matmul.allow_tf32 = bool(self.tf32)

    def uses_channels_last(self, device: torch.device) -> bool:
        """Whether G_x runs in NHWC on ``device`` (``auto``: where the forward pass is bf16)."""
        if self.channels_last == "auto":
            return self.uses_bf16(device)
        return bool(self.channels_last)

    def prepare(self, network: nn.Module, device: torch.device) -> nn.Module:
        """G_x in the requested memory format, compiled when asked (with an eager fallback)."""
        if self.uses_channels_last(device):
            network = ChannelsLast(network)
        if self.compile:
            network = CompiledOrEager(network, self.compile_mode)
        return network

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The forward pass's autocast context (bf16 when asked, else nothing)."""
        if not self.uses_bf16(device):
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def constants(self) -> contextlib.AbstractContextManager:
        """The context for values computed once per image (x̄ = g(y))."""
        return torch.inference_mode() if self.inference_constants else torch.no_grad()


_bf16_logged: set[tuple[str, bool]] = set()  # log the auto choice once per device type


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (``flags`` on x86, ``Features`` on ARM);
    empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def bf16_supported(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bfloat16 natively, and why.

    CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later). CPU: torch's own query
    (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``) where it exists,
    else the ``/proc/cpuinfo`` flags ``avx512_bf16``, ``amx_bf16`` (x86) or ``bf16`` (ARM).
    Without native support oneDNN emulates bf16, which is slower than float32, so ``auto``
    stays off. Other devices: off.
    """
    if device.type == "cuda":
        supported = bool(torch.cuda.is_bf16_supported())
        return supported, f"torch.cuda.is_bf16_supported() = {supported}"
    if device.type != "cpu":
        return False, f"no bf16 rule for device type {device.type!r}"
    queries = [
        getattr(getattr(torch, "cpu", None), name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    for query in queries:
        if query is not None and query():
            return True, f"torch.cpu.{query.__name__}() = True"
    flags = cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"}
    if flags:
        return True, f"CPU flags {' '.join(sorted(flags))}"
    return False, "no native bf16 on this CPU (no avx512_bf16, amx_bf16 or bf16 flag)"


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


def affinity_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average (runnable processes), 0 where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def worker_threads(jobs: int = 1) -> int:
    """Torch threads for one of ``jobs`` worker processes sharing this machine's cores."""
    return max(1, affinity_cores() // max(1, int(jobs)))


def free_threads(jobs: int = 1) -> tuple[int, str]:
    """Torch threads for one of ``jobs`` workers, from the cores free now, and why.

    free = affinity cores − round(1-minute load average), at least 1; each of the ``jobs``
    workers of a launcher gets ``max(1, free // jobs)``, never more than
    :func:`worker_threads` (cores // jobs). On a machine where other jobs already run this
    avoids oversubscribing the cores (measured on a 2-core machine with two one-thread jobs:
    the demo's first 150 iterations took 101 s with torch's default of all cores and 65 s
    with one thread). The load average lags by about a minute and counts a sweep's own
    workers once they run, so the choice is made once per process (:func:`auto_threads`).
    """
    cores, load = affinity_cores(), load_average()
    jobs = max(1, int(jobs))
    free = max(1, cores - round(load))
    threads = max(1, min(free // jobs, cores // jobs))
    why = f"{cores} cores, load average {load:.2f} → {free} free"
    return threads, why + (f", {jobs} launcher jobs" if jobs > 1 else "")


_auto_threads: dict[int, int] = {}  # jobs -> threads, decided at this process's first run


def auto_threads(jobs: int = 1) -> int:
    """:func:`free_threads`, decided and logged once per process (a joblib worker keeps the
    choice of its first job, made when the sweep started, for the jobs it runs after)."""
    jobs = max(1, int(jobs))
    if jobs not in _auto_threads:
        threads, why = free_threads(jobs)
        _auto_threads[jobs] = threads
        log.info("threads=auto: %d torch thread(s) (%s)", threads, why)
    return _auto_threads[jobs]


def resolve_threads(value, jobs: int = 1) -> int | None:
    """The top-level ``threads`` setting as a thread count: ``auto`` → :func:`auto_threads`,
    ``N`` → N (an explicit count always wins), ``null`` → ``None`` (torch's own default,
    usually every core). Raises ``ValueError`` for anything else."""
    check_threads(value)
    if value is None:
        return None
    if value == "auto":
        return auto_threads(jobs)
    return int(value)


def check_threads(value) -> None:
    """Raise ``ValueError`` unless ``value`` is ``auto``, ``None`` or a positive integer."""
    if value is None or value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"threads must be auto, null or a positive integer; got {value!r}")


def set_threads(threads: int) -> None:
    """``threads`` intra-op threads and one inter-op thread (the loop has no parallel branches)."""
    torch.set_num_threads(int(threads))
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel work
        torch.set_num_interop_threads(1)
