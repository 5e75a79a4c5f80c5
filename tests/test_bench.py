import subprocess
import sys

from conftest import PROJECT


def test_benchmark_runs_in_tiny_mode():
    done = subprocess.run(
        [sys.executable, "-m", "weakdeblur.bench", "--tiny", "--iterations", "6"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("device=")
    row = lines[-1].split()
    assert row[0] == "48x48" and float(row[2]) != 0  # a timing, noisy at this size
