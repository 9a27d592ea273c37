"""Overhead of ``torchscope.guard`` on a real fine-tune loop, and its per-check cost on a 1B model.

1. A CPU fine-tune (resnet18, frozen backbone with its BatchNorm in eval, new head, SGD; batch 16
   at 64 px) timed step by step without and with a guard checking after every optimizer step
   (``every=1``: the default ``content="sweep"``, and ``content="every-step"``, which reads every
   frozen byte at every step), and with one at ``every=10``, interleaved (A B C D D C B A ...) so
   the drift of a shared machine hits all alike; the ratio of the medians is the overhead. Goal:
   <= 1.03. The time of each check inside the step is also taken directly (a step post-hook
   before and one after the guard's), which the machine's noise blurs far less than the ratio.
2. A ~1B-parameter Llama-class model built from a config (bf16 CPU tensors, ~2.2 GB; no hub
   download), all of it frozen: the time of the check after an optimizer step (``content="sweep"``)
   and of one full ``guard.check()``, in seconds per GB of frozen weights.

Raw per-step times are kept; the statistics come from a pure function; ``--json`` saves both.

    python benchmarks/guard_overhead.py                      # both parts, CPU
    python benchmarks/guard_overhead.py --skip-llm --pairs 40 --json out.json
    python benchmarks/guard_overhead.py --device cuda        # the GPU check (benchmarks/gpu_check.sh)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import torchscope


def summarize(plain: list[float], guarded: list[float]) -> dict[str, Any]:
    """Medians, minimums and the ratios of each, and the median of the per-round ratios (each
    guarded step over the plain step of the same round, a second or less apart: the drift of a
    shared machine cancels in each pair): pure, from the raw per-step seconds."""
    p, g = statistics.median(plain), statistics.median(guarded)
    return {
        "ratio_paired_median": statistics.median(b / a for a, b in zip(plain, guarded, strict=True)),
        "plain_median_s": p,
        "guarded_median_s": g,
        "plain_min_s": min(plain),
        "guarded_min_s": min(guarded),
        "ratio_median": g / p,
        "ratio_min": min(guarded) / min(plain),
        "plain_s": plain,
        "guarded_s": guarded,
    }


def per_gb(seconds: list[float], nbytes: int) -> dict[str, Any]:
    """Per-check seconds and seconds per GB (1e9 bytes) checked: pure."""
    med = statistics.median(seconds)
    return {
        "bytes_checked": nbytes,
        "check_median_s": med,
        "check_min_s": min(seconds),
        "s_per_gb_median": med / (nbytes / 1e9),
        "s_per_gb_min": min(seconds) / (nbytes / 1e9),
        "check_s": seconds,
    }


def in_step(marks: list[tuple[float, float]]) -> dict[str, Any]:
    """The guard's own time inside each step, from the (before, after) clock marks: pure."""
    seconds = [b - a for a, b in marks]
    return {"check_median_s": statistics.median(seconds), "check_min_s": min(seconds), "check_s": seconds}


def clock(device: torch.device) -> Callable[[], float]:
    """A clock that first waits for the device, so a reading covers the work queued before it."""

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    return now


def fine_tune(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).to(device)
    model.requires_grad_(False)
    model.fc.requires_grad_(True)
    model.train()
    for m in model.modules():  # the fix for frozen BatchNorm: eval, so the guard has nothing to catch
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    # two optimizers over the same head: the plain steps use the one without hooks
    opt_plain = torch.optim.SGD(model.fc.parameters(), lr=0.01, momentum=0.9)
    opt_guarded = torch.optim.SGD(model.fc.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    now = clock(device)

    def step(opt: torch.optim.Optimizer) -> float:
        t0 = now()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        return now() - t0

    opt_sparse = torch.optim.SGD(model.fc.parameters(), lr=0.01, momentum=0.9)
    opt_full = torch.optim.SGD(model.fc.parameters(), lr=0.01, momentum=0.9)
    marks: dict[int, list[float]] = {id(opt_guarded): [], id(opt_full): []}
    for opt in (opt_guarded, opt_full):  # a clock mark just before the guard's hook runs...
        opt.register_step_post_hook(lambda o, a, k: marks[id(o)].append(now()))
    guard = torchscope.guard(model, optimizer=opt_guarded, every=1)
    try:
        full = torchscope.guard(model, optimizer=opt_full, every=1, content="every-step")
    except TypeError:  # a torchscope from before `content` (every check read every byte): the baseline
        full = torchscope.guard(model, optimizer=opt_full, every=1)
    sparse = torchscope.guard(model, optimizer=opt_sparse, every=args.sparse_every)
    for opt in (opt_guarded, opt_full):  # ...and one just after
        opt.register_step_post_hook(lambda o, a, k: marks[id(o)].append(now()))
    variants = [opt_plain, opt_guarded, opt_full, opt_sparse]
    for _ in range(args.warmup):
        for opt in variants:
            step(opt)
    for m in marks.values():
        m.clear()
    times: dict[int, list[float]] = {id(opt): [] for opt in variants}
    for i in range(args.pairs):  # A B C D, then D C B A: no variant always goes first
        for opt in variants if i % 2 == 0 else variants[::-1]:
            times[id(opt)].append(step(opt))
    plain, guarded = times[id(opt_plain)], times[id(opt_guarded)]
    sparse.close(check=False)
    full.close(check=False)
    checks = []
    for _ in range(args.checks):
        t0 = now()
        guard.check()
        checks.append(now() - t0)
    last = guard.close()
    assert last is not None and last.ok, "the benchmark's own fine-tune broke the freeze"
    frozen_bytes = sum(p.nbytes for n, p in model.named_parameters() if not n.startswith("fc."))
    frozen_bytes += sum(b.nbytes for b in model.buffers())
    out = summarize(plain, guarded)
    out["content"] = getattr(guard, "content", "every-step")
    out["sweep_checks"] = None if getattr(guard, "sweep", None) is None else guard.sweep.checks
    out["in_step"] = in_step(list(zip(marks[id(opt_guarded)][::2], marks[id(opt_guarded)][1::2], strict=True)))
    out["every_step"] = {**summarize(plain, times[id(opt_full)]),
                         "in_step": in_step(list(zip(marks[id(opt_full)][::2], marks[id(opt_full)][1::2], strict=True)))}  # fmt: skip
    out["sparse"] = {"every": args.sparse_every, **summarize(plain, times[id(opt_sparse)])}
    out["check"] = per_gb(checks, frozen_bytes)
    out["guard_steps"] = guard.steps
    out["snapshot_bytes"] = last.snapshot_bytes
    return out


def llm(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=args.llm_layers, num_attention_heads=32,
        num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
    )  # fmt: skip
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model = model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.02, 0.02, generator=g)  # real values: the check reads every byte
        for b in model.buffers():
            b.zero_()
    model.requires_grad_(False)
    nparams = sum(p.numel() for p in model.parameters())
    nbytes = sum(p.nbytes for p in model.parameters()) + sum(b.nbytes for b in model.buffers())
    now = clock(device)
    out: dict[str, Any] = {"params": nparams, "dtype": "bfloat16"}
    # an optimizer over a param outside the model: its step (with no grad, a no-op) runs the guard's
    # per-step check, the one a training loop pays for
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1, device=device))], lr=0.1)
    for mode in args.llm_modes:
        t0 = now()
        guard = torchscope.guard(model, mode=mode, optimizer=opt)
        start_s = now() - t0
        guard.check()  # warm-up
        seconds = []
        for _ in range(args.checks):
            t0 = now()
            guard.check()
            seconds.append(now() - t0)
        per_step = []
        sweep = getattr(guard, "sweep", None)
        for _ in range(max(args.checks, 2 * (sweep.checks if sweep else 1))):
            t0 = now()
            opt.step()
            per_step.append(now() - t0)
        out[mode] = {**per_gb(seconds, nbytes), "start_s": start_s, "snapshot_bytes": guard.snap.nbytes,
                     "per_step": per_gb(per_step, nbytes),
                     "sweep_checks": None if sweep is None else sweep.checks,
                     "content": getattr(guard, "content", "every-step")}  # fmt: skip
        guard.close(check=False)
        del guard
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=30, help="timed rounds of steps (plain, every=1, every=N)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    parser.add_argument("--checks", type=int, default=5, help="timed guard.check() calls")
    parser.add_argument("--sparse-every", type=int, default=10, help="a third variant: a guard with every=N")
    parser.add_argument("--skip-llm", action="store_true", help="only the fine-tune loop")
    parser.add_argument("--llm-layers", type=int, default=22, help="22 layers: 1.1B params (TinyLlama's shape)")
    parser.add_argument("--llm-modes", nargs="+", default=["fingerprint"], choices=["fingerprint", "exact"])
    parser.add_argument("--json", default=None, help="save raw times and statistics here")
    args = parser.parse_args()
    device = torch.device(args.device)

    result: dict[str, Any] = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}
    ft = fine_tune(args, device)
    result["fine_tune"] = ft
    print(
        f"resnet18 fine-tune, batch {args.batch} at {args.image_size} px, {args.pairs} rounds on {device}: "
        f"plain {ft['plain_median_s'] * 1e3:.1f} ms, guarded (every=1) {ft['guarded_median_s'] * 1e3:.1f} ms "
        f"median per step; ratio {ft['ratio_median']:.3f}x (of minimums {ft['ratio_min']:.3f}x, median of the "
        f"rounds' ratios {ft['ratio_paired_median']:.3f}x; goal <= 1.03x)"
    )
    print(
        f"  the guard's own time per step (every=1, content={ft['content']!r}, every byte within "
        f"{ft['sweep_checks'] or 1} check(s)): {ft['in_step']['check_median_s'] * 1e3:.2f} ms median "
        f"(min {ft['in_step']['check_min_s'] * 1e3:.2f}) = {ft['in_step']['check_median_s'] / ft['plain_median_s']:.3f} "
        "of the plain step's median"
    )
    es = ft["every_step"]
    print(
        f"  guarded at every=1, content='every-step': {es['guarded_median_s'] * 1e3:.1f} ms median, ratio "
        f"{es['ratio_median']:.3f}x (of minimums {es['ratio_min']:.3f}x, of rounds {es['ratio_paired_median']:.3f}x); "
        "its own time "
        f"{es['in_step']['check_median_s'] * 1e3:.2f} ms = {es['in_step']['check_median_s'] / ft['plain_median_s']:.3f}"
    )
    sp = ft["sparse"]
    print(f"  guarded at every={sp['every']}: {sp['guarded_median_s'] * 1e3:.1f} ms median, ratio {sp['ratio_median']:.3f}x "
          f"(of rounds {sp['ratio_paired_median']:.3f}x)")
    print(
        f"  one check of {ft['check']['bytes_checked'] / 1e6:.1f} MB frozen: {ft['check']['check_median_s'] * 1e3:.2f} ms "
        f"({ft['check']['s_per_gb_median']:.3f} s/GB); snapshot {ft['snapshot_bytes']} B"
    )
    if not args.skip_llm:
        big = llm(args, device)
        result["llm"] = big
        for mode in args.llm_modes:
            m = big[mode]
            print(
                f"Llama-class {big['params'] / 1e9:.2f}B params, bf16, {m['bytes_checked'] / 1e9:.2f} GB frozen, "
                f"{mode}: {m['check_median_s']:.3f} s per check ({m['s_per_gb_median']:.3f} s/GB, min "
                f"{m['s_per_gb_min']:.3f}); start {m['start_s']:.2f} s; snapshot {m['snapshot_bytes'] / 1e6:.3f} MB"
            )
            ps = m["per_step"]
            print(
                f"  the check after an optimizer step (content={m['content']!r}, every byte within {m['sweep_checks'] or 1} "
                f"checks): {ps['check_median_s']:.3f} s median (min {ps['check_min_s']:.3f}), "
                f"{ps['s_per_gb_median']:.4f} s per GB frozen"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
