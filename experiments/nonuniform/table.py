"""Print the uniform-vs-grid table from the runs of run_uniform_vs_grid.sh.

python experiments/nonuniform/table.py [experiments/nonuniform/runs]
"""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "runs")
print(
    f"{'model':<22} {'image':<24} {'PSNR':>6} {'SSIM':>6} {'blurry':>6} {'k err':>6} {'iters':>5} {'sec':>6}"
)
for model in ("uniform", "grid", "grid_residual", "uniform_weak_rec", "grid_residual_weak_rec"):
    summary = root / model / "summary.json"
    if not summary.is_file():
        print(f"{model:<22} (no summary.json)")
        continue
    records = json.loads(summary.read_text())["per_image"]
    for r in records:
        print(
            f"{model:<22} {r['name']:<24} {r.get('psnr', float('nan')):6.2f} {r.get('ssim', float('nan')):6.3f} "
            f"{r.get('blurry_psnr', float('nan')):6.2f} {r.get('kernel_error', float('nan')):6.3f} "
            f"{r.get('iterations', 0):5d} {r.get('seconds', float('nan')):6.0f}"
        )
    ok = [r for r in records if r.get("status") == "ok"]
    mean = {
        k: sum(r[k] for r in ok) / len(ok)
        for k in ("psnr", "ssim", "blurry_psnr", "kernel_error", "seconds")
    }
    print(
        f"{model:<22} {'mean':<24} {mean['psnr']:6.2f} {mean['ssim']:6.3f} {mean['blurry_psnr']:6.2f} "
        f"{mean['kernel_error']:6.3f} {'':5} {mean['seconds']:6.0f}"
    )
