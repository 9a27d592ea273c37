"""Extra memory of ``check_step`` (fingerprint vs exact mode) and the speed of fingerprints.

1. resnet50 with a frozen backbone (everything but ``fc``), one SGD step on a small batch. The peak
   of every storage torch ops create (``track_allocations``) is measured for the plain step and for
   ``check_step(step)`` side by side, a few rounds each; the extra memory is the difference of the
   peaks, as a fraction of the model's param bytes. Goal: fingerprint <= 1 %.
2. Fingerprint time for 1 GB of params (64 tensors of 16 MB), hash method (``torch.hash_tensor``),
   and the chunked weighted fallback on a smaller slice.

    python benchmarks/check_memory.py
    python benchmarks/check_memory.py --rounds 3 --gigabytes 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchvision

from torchscope import check_step, freeze_backbone
from torchscope._fingerprint import fingerprint_many, has_hash_tensor, to_host, track_allocations


def peak_bytes(fn: Callable[[], Any]) -> int:
    with track_allocations() as mem:
        fn()
    return mem.peak


def memory(rounds: int, batch: int, size: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    freeze_backbone(model)
    model.eval()  # frozen BatchNorm kept in eval: the check finds nothing, only memory is measured
    param_bytes = sum(p.nbytes for p in model.parameters())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up: momentum buffers exist from here on, so every later step allocates the same
    rows: dict[str, list[int]] = {"step": [], "fingerprint": [], "exact": [], "exact_cpu": []}
    for _ in range(rounds):
        rows["step"].append(peak_bytes(step))
        rows["fingerprint"].append(peak_bytes(lambda: check_step(model, step, optimizer=opt, mode="fingerprint")))
        rows["exact"].append(peak_bytes(lambda: check_step(model, step, optimizer=opt, mode="exact")))
        rows["exact_cpu"].append(
            peak_bytes(lambda: check_step(model, step, optimizer=opt, mode="exact", snapshot_device="cpu"))
        )
    base = min(rows["step"])
    frozen_bytes = sum(p.nbytes for p in model.parameters() if not p.requires_grad)
    frozen_bytes += sum(b.nbytes for b in model.buffers())
    out: dict[str, Any] = {
        "param_bytes": param_bytes,
        "frozen_bytes": frozen_bytes,
        "step_peak_bytes": base,
        "raw_peaks": rows,
    }
    for mode in ("fingerprint", "exact", "exact_cpu"):
        extra = min(rows[mode]) - base
        out[mode] = {"extra_bytes": extra, "fraction_of_param_bytes": extra / param_bytes}
    return out


def fingerprint_speed(gigabytes: float, rounds: int) -> dict[str, Any]:
    n_tensors = 64
    per = int(gigabytes * 1e9 / 4 / n_tensors)
    tensors = [torch.randn(per) for _ in range(n_tensors)]
    total = sum(t.nbytes for t in tensors)
    out: dict[str, Any] = {"bytes": total}
    # Side by side: what exact mode pays for its snapshot of the same bytes (one clone per tensor).
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        copies = [t.clone() for t in tensors]
        times.append(time.perf_counter() - t0)
        del copies
    out["clone"] = {"timed_bytes": total, "seconds_raw": times, "seconds_median": statistics.median(times),
                    "gb_per_s": total / statistics.median(times) / 1e9,
                    "seconds_per_gb": statistics.median(times) / (total / 1e9)}
    methods = (["hash"] if has_hash_tensor() else []) + ["weighted"]
    for method in methods:
        # the weighted fallback is slower: time it on an eighth of the tensors and scale
        subset = tensors if method == "hash" else tensors[: n_tensors // 8]
        sub_bytes = sum(t.nbytes for t in subset)
        to_host(fingerprint_many(subset[:1], method))  # warm-up (weights cache, kernels)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            to_host(fingerprint_many(subset, method))  # one host transfer: the values are ready here
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out[method] = {
            "timed_bytes": sub_bytes,
            "seconds_raw": times,
            "seconds_median": med,
            "gb_per_s": sub_bytes / med / 1e9,
            "seconds_per_gb": med / (sub_bytes / 1e9),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--only", choices=["memory", "speed"], default=None, help="run one part only")
    parser.add_argument("--json", default=None, help="save the raw numbers here")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average before: "
        f"{os.getloadavg()[0]:.2f}, hash_tensor: {has_hash_tensor()}"
    )
    mib = 1024**2
    mem: dict[str, Any] = {}
    speed: dict[str, Any] = {}
    if args.only != "speed":
        mem = memory(args.rounds, args.batch_size, args.image_size)
        print_memory(mem, mib)
    if args.only != "memory":
        speed = fingerprint_speed(args.gigabytes, args.rounds)
        print_speed(speed, args.rounds)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"memory": mem, "fingerprint": speed}, f, indent=2)


def print_memory(mem: dict[str, Any], mib: int) -> None:
    print(
        f"\nresnet50, frozen backbone: params {mem['param_bytes'] / mib:.1f} MiB, frozen params+buffers "
        f"{mem['frozen_bytes'] / mib:.1f} MiB, plain step peak {mem['step_peak_bytes'] / mib:.1f} MiB"
    )
    print(f"{'mode':<12} {'extra peak':>12} {'of param bytes':>15}")
    for mode in ("fingerprint", "exact", "exact_cpu"):
        row = mem[mode]
        print(f"{mode:<12} {row['extra_bytes'] / mib:>8.2f} MiB {100 * row['fraction_of_param_bytes']:>14.3f}%")


def print_speed(speed: dict[str, Any], rounds: int) -> None:
    print(f"\nfingerprint of {speed['bytes'] / 1e9:.2f} GB of params (64 tensors):")
    for method in ("clone", "hash", "weighted"):
        if method in speed:
            row = speed[method]
            print(
                f"{method:<10} {row['seconds_per_gb']:.3f} s/GB ({row['gb_per_s']:.2f} GB/s; "
                f"timed on {row['timed_bytes'] / 1e9:.2f} GB, median of {rounds})"
            )
    if "hash" in speed:
        print(f"hash / clone time: {speed['hash']['seconds_per_gb'] / speed['clone']['seconds_per_gb']:.2f}")


if __name__ == "__main__":
    main()
