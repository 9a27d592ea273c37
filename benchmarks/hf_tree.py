"""``torchscope tree hf:llama`` (Llama-2-7B's default config, on meta): time beyond the import, memory.

In one process: the imports (torch, transformers and its Llama modules, which pull in torchvision),
then ``load_model("hf:llama", device="meta")`` + ``tree()`` a few rounds (median), with the peak
RSS before and after the builds. Side by side, as subprocesses: ``torchscope tree hf:llama`` and a
bare ``python -c "import torch, transformers; ..."`` doing the same imports, so the difference is
what torchscope adds beyond the import. Goal: under 1 s, and no memory for the 6.7 B params.

    python benchmarks/hf_tree.py
    python benchmarks/hf_tree.py --model-type mistral --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

IMPORTS = (
    "import torch, transformers; from transformers import AutoConfig; "
    "AutoConfig.for_model({t!r}); import transformers.models.{t}.modeling_{t}"
)


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def in_process(model_type: str, rounds: int) -> dict[str, object]:
    t0 = time.perf_counter()
    exec(IMPORTS.format(t=model_type))
    import_s = time.perf_counter() - t0
    from torchscope import load_model, tree

    rss_before = peak_rss()
    times, params = [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        params = tree(load_model(f"hf:{model_type}", device="meta")).total_params
        times.append(time.perf_counter() - t0)
    return {
        "import_seconds": import_s,
        "build_and_tree_seconds": times,
        "median_seconds": statistics.median(times),
        "first_seconds": times[0],
        "params": params,
        "peak_rss_increase_bytes": peak_rss() - rss_before,
    }


def wall(cmd: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-type", default="llama")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    inner = in_process(args.model_type, args.rounds)
    print(
        f"hf:{args.model_type} on meta: {inner['params']:,} params; imports {inner['import_seconds']:.2f} s; "
        f"load_model + tree: first {inner['first_seconds']:.3f} s, median {inner['median_seconds']:.3f} s "
        f"of {args.rounds}; peak RSS grew {int(inner['peak_rss_increase_bytes']) / 2**20:.1f} MiB"  # type: ignore[call-overload]
    )
    bare = wall([sys.executable, "-c", IMPORTS.format(t=args.model_type)], args.rounds)
    cli = wall(
        [sys.executable, "-m", "torchscope", "tree", f"hf:{args.model_type}", "--depth", "2"], args.rounds
    )
    print(
        f"subprocess wall (median of {args.rounds}): bare imports {bare:.2f} s, torchscope tree {cli:.2f} s, "
        f"beyond the import {cli - bare:.2f} s"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"in_process": inner, "bare_import_wall": bare, "cli_wall": cli}, indent=2)
        )


if __name__ == "__main__":
    main()
