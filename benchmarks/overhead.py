"""Overhead of ``torchscope.record()`` on every module of a training step.

Times a resnet50 training step (forward, backward, SGD step; batch 8 at 224 on the CPU by default)
without and with ``record()`` hooked on every module, interleaved in one run (A B B A ...) so drift
of a shared machine hits both alike, and prints the ratio of the medians. Goal: <= 1.05.

    python benchmarks/overhead.py                  # CPU, 4 pairs of steps
    python benchmarks/overhead.py --device cuda --steps 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torchvision

import torchscope
from torchscope import _fused
from torchscope._record import Recorder


def summarize(plain: list[float], recorded: list[float]) -> dict[str, Any]:
    """Medians, spreads and the ratio of the medians: pure, from the raw per-step seconds."""
    p, r = statistics.median(plain), statistics.median(recorded)
    return {
        "plain_median_s": p,
        "recorded_median_s": r,
        "plain_min_s": min(plain),
        "recorded_min_s": min(recorded),
        "ratio_median": r / p,
        "ratio_min": min(recorded) / min(plain),
        "plain_s": plain,
        "recorded_s": recorded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--compare-torch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time record() with torch's reductions instead of the fused kernel (CPU)",
    )
    parser.add_argument("--json", default=None, help="save raw times and statistics here")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.model, weights=None).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def plain() -> None:
        step()

    # Wall time spent inside record()'s own hooks and report(), per step: on the CPU the statistics
    # run synchronously there, so this is the work record() adds, measured without the noise of
    # the rest of the step (which the interleaved ratio above still carries).
    in_hooks = [0.0]

    def clocked(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                in_hooks[0] += time.perf_counter() - t0

        return wrapper

    for attr in ("_root_pre", "_root_post", "_post", "report"):
        setattr(Recorder, attr, clocked(getattr(Recorder, attr)))
    hook_times: dict[str, list[float]] = {"recorded": [], "recorded_torch": []}

    def recorded() -> None:
        in_hooks[0] = 0.0
        with torchscope.record(model) as rec:  # every module
            step()
        rec.report()
        hook_times["recorded_torch" if not _fused.enabled else "recorded"].append(in_hooks[0])

    def recorded_torch() -> None:
        # the same, with the statistics from torch's own reductions instead of the fused kernel
        _fused.enabled = False
        try:
            recorded()
        finally:
            _fused.enabled = True

    def timed(fn: Callable[[], None]) -> float:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    variants: list[tuple[str, Callable[[], None]]] = [("plain", plain), ("recorded", recorded)]
    if args.compare_torch and device.type == "cpu":
        variants.append(("recorded_torch", recorded_torch))
    for _ in range(args.warmup):
        for _, fn in variants:
            fn()
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for i in range(args.steps):
        order = list(variants)
        if i % 2:
            order.reverse()  # A B C C B A: no variant always runs first
        for name, fn in order:
            times[name].append(timed(fn))
    result = summarize(times["plain"], times["recorded"])
    torch_result = summarize(times["plain"], times["recorded_torch"]) if "recorded_torch" in times else None
    n_modules = sum(1 for n, _ in model.named_modules() if n)
    print(
        f"{args.model} train step, batch {args.batch} at {args.image_size}, {device}, "
        f"record() on {n_modules} modules, {args.steps} steps each (interleaved)"
    )
    print(
        f"  plain:    median {result['plain_median_s'] * 1e3:8.1f} ms   min {result['plain_min_s'] * 1e3:8.1f} ms"
    )
    print(
        f"  recorded: median {result['recorded_median_s'] * 1e3:8.1f} ms   min {result['recorded_min_s'] * 1e3:8.1f} ms"
    )
    print(
        f"  ratio (median): {result['ratio_median']:.3f}   ratio (min): {result['ratio_min']:.3f}   goal <= 1.05"
    )
    for name, label in (("recorded", "recorded"), ("recorded_torch", "torch reductions")):
        spent = hook_times[name][args.warmup :]
        if spent:
            share = statistics.median(spent) / result["plain_median_s"]
            result[f"{name}_in_hooks_s"] = spent
            print(
                f"  inside record()'s hooks ({label}): median {statistics.median(spent) * 1e3:6.1f} ms per step"
                f" = {share:.3f} of the plain median"
            )
    if device.type == "cpu":
        print(f"  fused CPU statistics kernel: {_fused.status()}")
    if torch_result is not None:
        print(
            f"  recorded, torch reductions: median {torch_result['recorded_median_s'] * 1e3:8.1f} ms   "
            f"ratio (median): {torch_result['ratio_median']:.3f}   ratio (min): {torch_result['ratio_min']:.3f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **result, "torch_reductions": torch_result}, f, indent=2)


if __name__ == "__main__":
    main()
