"""Does torchscope's benchmark harness add anything? torchscope/baseline ratios, side by side in one run.

For each model and mode, ``torchscope.bench`` interleaves windows of its own training loop with
windows of a plain hand-written loop on the same model, optimizer and batch, and reports the ratio
of their median img/s (goal: >= 0.98). This script runs the grid and prints one table.

    python benchmarks/bench_overhead.py                                  # resnet18+resnet50, CPU, batch 16
    python benchmarks/bench_overhead.py --models resnet18 --steps 5 --windows 7 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from torchscope._bench.run import bench


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--modes", default="frozen,full")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", default=None, help="save every result's to_dict() here")
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"batch {args.batch_size}, {args.image_size}px, {args.windows} windows x {args.steps} steps per loop, "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    header = f"{'model':<10} {'mode':<7} {'img/s':>8} {'spread':>7} {'baseline':>9} {'spread':>7} {'ratio':>6} {'MFU':>6}"
    print(header)
    print("-" * len(header))
    saved = []
    for model in args.models.split(","):
        for mode in args.modes.split(","):
            started = time.perf_counter()
            r = bench(
                model,
                mode=mode,
                device=args.device,
                batch_size=args.batch_size,
                image_size=args.image_size,
                steps=args.steps,
                windows=args.windows,
                warmup=args.warmup,
            )
            m = r.mode(mode)
            assert m.baseline is not None and m.ratio is not None
            mfu = "-" if m.efficiency.mfu is None else f"{m.efficiency.mfu * 100:.1f}%"
            print(
                f"{model:<10} {mode:<7} {m.harness.stats.img_s_median:>8.2f} {m.harness.stats.spread_pct:>6.1f}% "
                f"{m.baseline.stats.img_s_median:>9.2f} {m.baseline.stats.spread_pct:>6.1f}% {m.ratio:>6.3f} {mfu:>6}"
                f"   ({time.perf_counter() - started:.0f} s, check {'ok' if r.ok else 'FAILED'})",
                flush=True,
            )
            saved.append(r.to_dict())
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(saved, f, indent=2)


if __name__ == "__main__":
    main()
