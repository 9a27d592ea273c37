"""How long the memory prediction takes: densenet161 at batch 64, 224 px, and its --fit search.

Times, in one run, beyond the import (model built on meta first), wall and CPU seconds:

- the baseline: the direct way, torch's ``MemTracker`` over two AdamW steps under ``FakeTensorMode``
  (``--no-baseline`` skips it: it takes a minute or more);
- ``estimate_memory`` at the batch size;
- ``estimate_memory(..., fit=GPU)``: the prediction plus the --fit search (the trace at the batch size
  is reused; one more to fit the line, two to confirm).

Compare with the load average: other processes on a shared machine stretch the wall time, not the
CPU time.

    .venv/bin/python benchmarks/memory_speed.py [--model densenet161] [--batch 64] [--fit t4] [--no-baseline]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="densenet161")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image", type=int, default=224)
    parser.add_argument("--fit", default="t4")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    import torchscope
    from torchscope._loader import load_model

    model = load_model(args.model, device="meta")
    shape = (args.batch, 3, args.image, args.image)
    print(f"import + build on meta: {time.perf_counter() - t0:.2f} s wall")
    ours: list[float] = []
    walls: list[float] = []
    for label, fit in (("predict", None), (f"predict + --fit {args.fit}", args.fit)):
        wall, cpu = time.perf_counter(), time.process_time()
        report = torchscope.estimate_memory(model, shape, fit=fit)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ours.append(cpu)
        walls.append(wall)
        extra = f", batch {report.fit.batch_size} in {report.fit.traces} traces" if report.fit else ""
        print(
            f"{label:28s} {wall:6.2f} s wall {cpu:6.2f} s CPU  peak {report.peak / 2**30:.3f} GiB "
            f"in {report.phase}{extra}  (load average {os.getloadavg()[0]:.1f})"
        )

    if not args.no_baseline:  # after ours, so that ours runs cold (it pays the lazy imports)
        wall, cpu = time.perf_counter(), time.process_time()
        peak = baseline(args.model, shape)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{'baseline MemTracker + fake':28s} {wall:6.2f} s wall {cpu:6.2f} s CPU  peak {peak / 2**30:.3f} GiB"
        )
        print(f"baseline / predict: {cpu / ours[0]:.1f}x the CPU time, {wall / walls[0]:.1f}x the wall time")


def baseline(name: str, shape: tuple[int, ...]) -> int:
    """Peak bytes by torch's MemTracker over two AdamW steps of ``name`` under FakeTensorMode."""
    import torch
    import torchvision
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    with FakeTensorMode():
        model = torchvision.models.get_model(name)
        optimizer = torch.optim.AdamW(model.parameters(), foreach=True)
        tracker = MemTracker()
        tracker.track_external(model, optimizer)
        with tracker:
            for i in range(2):
                if i:
                    tracker.reset_mod_stats()  # MemTracker refuses a second forward otherwise
                x = torch.randn(shape)
                loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 1000, (shape[0],)))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                del x, loss
        snapshot = tracker.get_tracker_snapshot("peak")
    return max(v["Total"] for v in snapshot.values())


if __name__ == "__main__":
    main()
