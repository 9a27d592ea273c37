"""What checking a checkpoint's CRC-32s costs: ``load_model(..., weights=F)`` with and without ``verify``.

Saves a ~100 MB state_dict (resnet50 is 98 MB in float32) once, then alternates loads with
``verify=True`` and ``verify=False`` (the file is in the page cache after the first read, as it is
for a repeated run) and prints the median of each, their difference and ratio, and the cost of the
CRC pass alone (:func:`verify_zip`) in MB/s.

    python benchmarks/checkpoint_verify.py                 # resnet50, 7 rounds, CPU
    python benchmarks/checkpoint_verify.py --model resnet18 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from torchscope import load_model
from torchscope._loader.checkpoint import verify_zip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--rounds", type=int, default=7)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.pt"
        torch.save(load_model(ns.model).state_dict(), path)
        size = path.stat().st_size / 1e6
        times: dict[bool, list[float]] = {True: [], False: []}
        crc: list[float] = []
        load_model(ns.model, weights=path)  # warm-up: imports, page cache
        for _ in range(ns.rounds):
            for verify in (True, False):
                start = time.perf_counter()
                load_model(ns.model, weights=path, verify=verify)
                times[verify].append(time.perf_counter() - start)
            start = time.perf_counter()
            verify_zip(path)
            crc.append(time.perf_counter() - start)
        on, off, alone = (statistics.median(v) for v in (times[True], times[False], crc))
        print(f"{ns.model} checkpoint: {size:.1f} MB, {ns.rounds} rounds, median, CPU, torch {torch.__version__}")
        print(f"  load_model(weights=...) verify=True : {on * 1000:8.1f} ms")
        print(f"  load_model(weights=...) verify=False: {off * 1000:8.1f} ms")
        print(f"  difference {1000 * (on - off):+.1f} ms, ratio {on / off:.2f}x")
        print(f"  verify_zip alone: {alone * 1000:.1f} ms ({size / alone:.0f} MB/s)")


if __name__ == "__main__":
    main()
