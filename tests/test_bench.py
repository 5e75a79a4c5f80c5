import subprocess
import sys

from conftest import PROJECT


def test_benchmark_runs_in_tiny_mode():
    done = subprocess.run(
        [sys.executable, "-m", "weakdeblur.bench", "--tiny", "--iterations", "3", "--threads", "1"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("device=")
    rows = [line.split() for line in lines if line.lstrip().startswith("48x48")]
    assert [row[2] for row in rows] == ["eager", "channels_last"]
    assert float(rows[0][4]) == 1.0  # the eager row is the ratio's reference
    assert all(float(row[3]) != 0 and float(row[5]) > 0 for row in rows)  # s/iter, peak memory
    part2 = next(index for index, line in enumerate(lines) if line.startswith("part 2"))
    batches = [line.split() for line in lines[part2 + 2 :] if line.split()[0].isdigit()]
    assert [row[0] for row in batches] == ["1", "2"] and float(batches[0][3]) == 1.0
