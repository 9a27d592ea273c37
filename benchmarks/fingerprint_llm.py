"""check_step's fingerprint mode on a Llama-class LLM: extra peak memory and fingerprint speed.

A Llama model (``hf:llama`` with ``--config`` overrides; default ~1.1 B params, TinyLlama's shape) is
built in bf16 on the CPU, a LoRA adapter (peft, r=8 on q_proj/v_proj) put on top, so the whole base
is frozen: the case where a copy of the frozen weights (exact mode) would not fit. One LoRA training
step on a short token batch is measured alone and under ``check_step(mode="fingerprint")``, side by
side, a few rounds each:

1. extra peak memory = peak under check_step - peak of the plain step, both as the peak of every
   storage torch ops create (``track_allocations``) and as the process's peak RSS (VmHWM, reset
   before each run), as a fraction of the model's param bytes. Goal: <= 1 %.
2. fingerprint time per GB of params: every param fingerprinted and brought to the host, with the
   fused C kernel and with the chunked torch reduction (on a slice, scaled), next to cloning the same
   bytes (what exact mode's snapshot costs). Goal: <= 1 s/GB.

    python benchmarks/fingerprint_llm.py                       # ~1.1 B params, 2.2 GB in bf16
    python benchmarks/fingerprint_llm.py --hidden 2560 --layers 32 --intermediate 6912 --kv-heads 8   # 2.39 B
    python benchmarks/fingerprint_llm.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from torchscope import _fused, check_step, load_model
from torchscope._fingerprint import fingerprint_many, to_host, track_allocations
from torchscope._tokens import token_batch


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def measure(fn: Callable[[], Any]) -> dict[str, int]:
    """Peak bytes of storages torch ops created inside ``fn``, and the peak RSS above the start."""
    resettable = _reset_peak_rss()
    start = _peak_rss()
    with track_allocations() as mem:
        fn()
    return {"tracked_peak": mem.peak, "rss_peak_over_start": _peak_rss() - start if resettable else -1}


def build(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, Any]]:
    import peft

    config = {
        "hidden_size": args.hidden,
        "num_hidden_layers": args.layers,
        "intermediate_size": args.intermediate,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "vocab_size": args.vocab,
        "dtype": "bfloat16",
    }
    t0 = time.perf_counter()
    torch.manual_seed(0)
    base = load_model("hf:llama", config=config)
    model = peft.get_peft_model(
        base, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    info = {"config": config, "build_seconds": time.perf_counter() - t0}
    return model, info


def memory(model: torch.nn.Module, args: argparse.Namespace) -> dict[str, Any]:
    params = list(model.parameters())
    param_bytes = sum(p.nbytes for p in params)
    trainable = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    batch = token_batch(
        model, (args.batch, args.seq), labels=True, generator=torch.Generator().manual_seed(0)
    )

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        opt.step()

    step()  # warm-up: AdamW's state exists from here on, so every later step allocates the same
    rows: dict[str, list[dict[str, int]]] = {"step": [], "fingerprint": []}
    seconds: dict[str, list[float]] = {"step": [], "fingerprint": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        rows["step"].append(measure(step))
        seconds["step"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reports: list[Any] = []

        def checked(into: list[Any] = reports) -> None:
            into.append(check_step(model, step, optimizer=opt, mode="fingerprint"))

        rows["fingerprint"].append(measure(checked))
        seconds["fingerprint"].append(time.perf_counter() - t0)
        if not reports[0].ok:
            raise SystemExit(f"check_step found a violation on a correct LoRA step: {reports[0].to_dict()}")
    out: dict[str, Any] = {
        "param_bytes": param_bytes,
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in trainable),
        "raw": rows,
        "seconds": seconds,
    }
    for key in ("tracked_peak", "rss_peak_over_start"):
        base = min(r[key] for r in rows["step"])
        under = min(r[key] for r in rows["fingerprint"])
        out[key] = {
            "step": base,
            "check_step": under,
            "extra": under - base,
            "fraction": (under - base) / param_bytes,
        }
    return out


def speed(model: torch.nn.Module, rounds: int) -> dict[str, Any]:
    tensors = [p.detach() for p in model.parameters()]
    total = sum(t.nbytes for t in tensors)
    out: dict[str, Any] = {"bytes": total, "threads": torch.get_num_threads(), "kernel": _fused.status()}

    def timed(fn: Callable[[], Any], timed_bytes: int) -> dict[str, Any]:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        return {"timed_bytes": timed_bytes, "seconds_raw": times, "seconds_per_gb": med / (timed_bytes / 1e9)}

    to_host(fingerprint_many(tensors[:2]))  # warm-up: weights cache, kernel build
    _fused.enabled = True
    out["fused"] = timed(lambda: to_host(fingerprint_many(tensors)), total)
    # the torch path is slow: time it on about a tenth of the bytes
    subset, acc = [], 0
    for t in tensors:
        if acc >= total / 10:
            break
        subset.append(t)
        acc += t.nbytes
    _fused.enabled = False
    try:
        out["torch"] = timed(lambda: to_host(fingerprint_many(subset)), acc)
    finally:
        _fused.enabled = True
    out["clone"] = timed(lambda: [t.clone() for t in subset], acc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--intermediate", type=int, default=5632)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", default=None, help="save the raw numbers here")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average before: "
        f"{os.getloadavg()[0]:.2f}"
    )
    model, info = build(args)
    mem = memory(model, args)
    gb = mem["param_bytes"] / 1e9
    print(
        f"\nLlama {mem['params'] / 1e9:.2f} B params, bf16, {gb:.2f} GB; LoRA r=8 on q_proj/v_proj: "
        f"{mem['trainable_params']:,} trainable (built in {info['build_seconds']:.1f} s)"
    )
    print(f"one LoRA step on {args.batch}x{args.seq} tokens, alone vs under check_step(mode='fingerprint'):")
    for key, label in (
        ("tracked_peak", "storages torch ops created"),
        ("rss_peak_over_start", "process peak RSS"),
    ):
        row = mem[key]
        print(
            f"  {label:<28} step {row['step'] / 2**20:9.1f} MiB  check_step {row['check_step'] / 2**20:9.1f} MiB  "
            f"extra {row['extra'] / 2**20:8.2f} MiB = {100 * row['fraction']:.3f} % of param bytes"
        )
    fp = speed(model, args.rounds)
    print(
        f"\nfingerprint of all {fp['bytes'] / 1e9:.2f} GB of params ({fp['threads']} threads, kernel {fp['kernel']}):"
    )
    for name in ("fused", "torch", "clone"):
        row = fp[name]
        print(f"  {name:<6} {row['seconds_per_gb']:.3f} s/GB (timed on {row['timed_bytes'] / 1e9:.2f} GB)")
    print(
        f"  fused / torch: {fp['fused']['seconds_per_gb'] / fp['torch']['seconds_per_gb']:.3f}, "
        f"fused / clone: {fp['fused']['seconds_per_gb'] / fp['clone']['seconds_per_gb']:.3f}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "memory": mem, "fingerprint": fp}, f, indent=2)


if __name__ == "__main__":
    main()
