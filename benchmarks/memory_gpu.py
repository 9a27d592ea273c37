"""On a CUDA machine: the memory prediction against torch.cuda.max_memory_allocated(), and --fit against reality.

For each model (random weights, 10 classes) and autocast setting, it predicts the peak of two AdamW
training steps for ``--device cuda`` (512-byte blocks, foreach kernels), then runs the same two steps
for real on the GPU and reads ``torch.cuda.max_memory_allocated()`` (reset with
``torch.cuda.reset_peak_memory_stats()`` after the model is on the GPU, so the weights count, as they
do in the prediction). Goal: within 5%. cuDNN/cuBLAS workspaces are allocated through the caching
allocator too, so the measured peak may exceed the prediction by them.

Then ``--fit`` for this GPU's memory (``total_memory``, same margin as the CLI): the predicted batch
must run, and the next power of two above it should run out of memory.

    .venv/bin/python benchmarks/memory_gpu.py [--models resnet50,densenet161,inception_v3,vit_b_16]
        [--batch 32] [--no-fit]
"""

from __future__ import annotations

import argparse
import gc
import time

import torch
import torchvision

import torchscope
from torchscope._memory.cards import MARGIN
from torchscope._memory.step import StepConfig, make_batch, make_optimizer, training_step

GOAL = 0.05


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"num_classes": 10}
    if name in ("inception_v3", "googlenet"):
        kwargs["init_weights"] = False  # type: ignore[assignment]
    return torchvision.models.get_model(name, **kwargs)


def image_size(name: str) -> int:
    return 299 if name == "inception_v3" else 224


def measured(name: str, batch: int, amp: str) -> int | None:
    """max_memory_allocated() over two real AdamW steps on cuda:0, or None on out-of-memory."""
    model = build(name).cuda()
    config = StepConfig(optimizer="adamw", amp=amp, device="cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, params)
    step = training_step(config, optimizer)
    model.train()
    size = image_size(name)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    try:
        for _ in range(2):
            data = make_batch((((batch, 3, size, size), torch.float32),), config, torch.device("cuda"))
            step(model, data)
            del data
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    except torch.cuda.OutOfMemoryError:
        peak = None
    del model, optimizer, step, params
    gc.collect()
    torch.cuda.empty_cache()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,densenet161,inception_v3,vit_b_16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-fit", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("memory_gpu.py needs a CUDA device")
    total = torch.cuda.get_device_properties(0).total_memory
    print(f"{torch.cuda.get_device_name(0)}: {total / 2**30:.1f} GiB; torch {torch.__version__}")
    print(
        f"{'model':14s} {'amp':4s} {'batch':>5s} {'predicted MiB':>14s} {'measured MiB':>13s} {'error':>8s}  ok"
    )
    within = rows = 0
    for name in args.models.split(","):
        size = image_size(name)
        for amp in ("off", "bf16"):
            with torch.device("meta"):
                meta = build(name)
            pred = torchscope.estimate_memory(meta, (args.batch, 3, size, size), amp=amp, device="cuda").peak
            real = measured(name, args.batch, amp)
            if real is None:
                print(f"{name:14s} {amp:4s} {args.batch:5d} {pred / 2**20:14.1f} {'OOM':>13s}")
                continue
            err = (pred - real) / real
            rows += 1
            within += abs(err) <= GOAL
            print(
                f"{name:14s} {amp:4s} {args.batch:5d} {pred / 2**20:14.1f} {real / 2**20:13.1f} "
                f"{100 * err:+7.2f}%  {'yes' if abs(err) <= GOAL else 'NO'}",
                flush=True,
            )
    print(f"within {GOAL:.0%}: {within} of {rows} rows")
    if args.no_fit:
        return
    print(
        f"\n--fit {total / 2**30:.1f} GiB (usable {MARGIN.usable(total) / 2**30:.1f} GiB: {MARGIN.describe()})"
    )
    for name in args.models.split(","):
        size = image_size(name)
        with torch.device("meta"):
            meta = build(name)
        start = time.perf_counter()
        fit = torchscope.estimate_memory(meta, (args.batch, 3, size, size), fit=total).fit
        seconds = time.perf_counter() - start
        assert fit is not None
        b = fit.batch_size
        up = 1 << b.bit_length()  # the next power of two above b
        at_b, at_up = measured(name, b, "off"), measured(name, up, "off")
        verdict = "ok" if at_b is not None and at_up is None else "NO"
        print(
            f"{name:14s} predicted batch {b} ({seconds:.1f} s, {fit.traces} traces): "
            f"batch {b} {'runs, peak %.1f GiB' % (at_b / 2**30) if at_b else 'OOM'}; "
            f"batch {up} {'OOM' if at_up is None else 'runs, peak %.1f GiB' % (at_up / 2**30)}  {verdict}",
            flush=True,
        )


if __name__ == "__main__":
    main()
