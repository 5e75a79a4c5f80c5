from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

PROJECT = Path(__file__).resolve().parents[1]
CONF = PROJECT / "conf"

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # and in the runs the tests start


def data_root() -> Path | None:
    root = os.environ.get("WEAKDEBLUR_DATA")
    candidates = [Path(root)] if root else []
    candidates.append(PROJECT.parent / "shared" / "data")
    return next((c for c in candidates if (c / "levin").is_dir()), None)


@pytest.fixture
def levin_root(monkeypatch) -> Path:
    """The Levin folder; the data root it was found in is also the environment's, so that the
    runs a test starts find it as the test did."""
    root = data_root()
    if root is None:
        pytest.skip("Levin data not found: set WEAKDEBLUR_DATA to a folder holding levin/")
    monkeypatch.setenv("WEAKDEBLUR_DATA", str(root))
    return root / "levin"


DEVICE_VARIABLE = "WEAKDEBLUR_TEST_DEVICE"


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default=None,
        help=f"device of the device-sensitive tests (marker `device`): cpu (default), cuda, "
        f"cuda:1, ...; also the environment variable {DEVICE_VARIABLE}",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "device: runs its solvers on the --device device (make gpu-check: cuda)"
    )
    if config.getoption("device"):
        os.environ[DEVICE_VARIABLE] = config.getoption("device")


def test_device() -> str:
    """The device of the device-sensitive tests: ``--device`` / ``$WEAKDEBLUR_TEST_DEVICE``,
    else ``cpu`` (CI has no GPU; ``make gpu-check`` runs them with ``cuda``)."""
    return os.environ.get(DEVICE_VARIABLE) or "cpu"


test_device.__test__ = False  # a helper, not a test


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


TINY_DEMO = [
    "data=demo",
    "data.size=40",
    "data.offset=null",
    "data.true_kernel_size=5",
    "data.kernel_size=7",
]

TINY_OVERRIDES = [
    "generator=small",
    "optim.iterations=40",
    "optim.log_every=10",
    "optim.snapshot_every=20",
    "stopping.check_every=10",
    "logger=none",
    "progress=false",
    "metrics.lpips=false",
]


def run_weakdeblur(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m weakdeblur.run ARGUMENTS`` from the project root, W&B silenced, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "weakdeblur.run", *arguments],
        cwd=PROJECT,
        env={**os.environ, "WANDB_SILENT": "true", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
