"""The memory predictor against the truth: 20 torchvision models x {full, frozen} x {fp32, bf16 autocast}.

Each row predicts the peak of two AdamW training steps under fake tensors / meta (no kernel runs)
and measures the peak of live tensor storage in the same two steps run for real on the CPU (a
dispatch mode over real tensors, counting storages by address). Goal: every row within 5%.

    .venv/bin/python benchmarks/memory_truth.py [--models resnet18,vit_b_16] [--batch 2] [--image 64]
"""

from __future__ import annotations

import argparse
import time

from torchscope._memory.truth import TRUTH_MODELS, truth_row

GOAL = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TRUTH_MODELS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--image", type=int, default=64)
    args = parser.parse_args()
    print(
        f"{'model':20s} {'freeze':6s} {'amp':4s} {'predicted MiB':>14s} {'measured MiB':>13s} {'error':>8s}  ok"
    )
    rows = []
    start = time.perf_counter()
    for name in args.models.split(","):
        for frozen in (False, True):
            for amp in ("off", "bf16"):
                pred, truth = truth_row(name, frozen, amp, batch=args.batch, image=args.image)
                err = (pred - truth) / truth
                rows.append((name, frozen, amp, err))
                print(
                    f"{name:20s} {'frozen' if frozen else 'full':6s} {'fp32' if amp == 'off' else amp:4s} "
                    f"{pred / 2**20:14.3f} {truth / 2**20:13.3f} {100 * err:+7.3f}%  {'yes' if abs(err) <= GOAL else 'NO'}",
                    flush=True,
                )
    within = sum(1 for r in rows if abs(r[3]) <= GOAL)
    worst = max(rows, key=lambda r: abs(r[3]))
    print(
        f"\nwithin {GOAL:.0%}: {within} of {len(rows)} rows; worst: {worst[0]} "
        f"{'frozen' if worst[1] else 'full'} {worst[2]} {100 * worst[3]:+.3f}%; {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
