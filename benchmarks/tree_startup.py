"""How much does `torchscope tree` cost on top of importing torch and torchvision?

Runs, interleaved in one process so that machine load hits both alike:

- ``torchscope tree resnet18 --no-cache`` (a subprocess, output discarded)
- ``python -c "import torch, torchvision"`` (the floor any torch tool pays)

and prints the medians and their ratio (goal: <= 1.3), then the wall time of
``torchscope tree vit_h_14`` (goal: < 3 s) twice, interleaved: cold (``--no-cache``: import torch,
build on meta, collect) and warm (the tree cache primed once, so the run imports no torch). The cache
is a fresh temporary TORCHSCOPE_CACHE_DIR, never the user's. Raw times go to ``--json``.

    python benchmarks/tree_startup.py --rounds 7 --json tree_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

TREE = [sys.executable, "-m", "torchscope", "tree"]
IMPORT = [sys.executable, "-c", "import torch, torchvision"]
RESNET_COLD = [*TREE, "resnet18", "--no-cache"]
VIT_COLD = [*TREE, "vit_h_14", "--no-cache"]
VIT_WARM = [*TREE, "vit_h_14"]


CPU: dict[str, list[float]] = {}


def wall_time(cmd: Sequence[str], label: str = "") -> float:
    """Seconds from start to exit of ``cmd``; a failing command is an error, not a fast run.

    The child's CPU seconds (user + sys) are kept in ``CPU[label]``: on a shared, loaded machine
    they show the work done, while wall time also shows the waiting.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if label:
        CPU.setdefault(label, []).append(cpu)
    return wall


def stdout_of(cmd: Sequence[str]) -> str:
    """The output of ``cmd`` (checked: a failing command is an error)."""
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def summarize(times: Sequence[float]) -> dict[str, float]:
    """Median, min, max and spread (max-min over median) of raw times."""
    med = statistics.median(times)
    return {"median": med, "min": min(times), "max": max(times), "spread": (max(times) - min(times)) / med}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--vit-rounds", type=int, default=3, help="runs of `tree vit_h_14` (default 3)")
    parser.add_argument("--json", help="save raw times and summaries to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="torchscope-bench-cache-") as cache:
        os.environ["TORCHSCOPE_CACHE_DIR"] = cache  # inherited by every child below
        return run(args)


def run(args: argparse.Namespace) -> int:
    """Time everything in the current TORCHSCOPE_CACHE_DIR (empty at the start) and print the report."""
    # warm-up: the first run of each pays for cold file caches
    wall_time(IMPORT)
    wall_time(RESNET_COLD)

    tree_times: list[float] = []
    import_times: list[float] = []
    for i in range(args.rounds):
        # alternate which goes first, so drift in machine load does not favour one
        order = [("tree", RESNET_COLD), ("import", IMPORT)]
        for label, cmd in order if i % 2 == 0 else order[::-1]:
            (tree_times if label == "tree" else import_times).append(wall_time(cmd, label))

    # prime the cache once (a miss that stores), then check that a hit prints exactly what a cold
    # run does: a fast wrong answer is no speed-up
    cold_out, primed_out = stdout_of(VIT_COLD), stdout_of(VIT_WARM)
    if not os.listdir(os.path.join(os.environ["TORCHSCOPE_CACHE_DIR"], "tree")):
        raise SystemExit("tree vit_h_14: the first run stored nothing in the cache")
    if primed_out != cold_out or stdout_of(VIT_WARM) != cold_out:
        raise SystemExit("tree vit_h_14: cached output differs from --no-cache output")
    vit_times: list[float] = []
    warm_times: list[float] = []
    for i in range(args.vit_rounds):
        order = [("vit", VIT_COLD), ("vit_warm", VIT_WARM)]
        for label, cmd in order if i % 2 == 0 else order[::-1]:
            (vit_times if label == "vit" else warm_times).append(wall_time(cmd, label))

    tree_s, import_s = summarize(tree_times), summarize(import_times)
    vit_s, warm_s = summarize(vit_times), summarize(warm_times)
    ratio = tree_s["median"] / import_s["median"]
    print(f"python:                         {platform.python_version()} on {platform.machine()}")
    print(f"rounds:                         {args.rounds} interleaved")
    print(
        f"torchscope tree resnet18:       median {tree_s['median']:.2f} s (min {tree_s['min']:.2f}, max {tree_s['max']:.2f})"
    )
    print(
        f"import torch, torchvision:      median {import_s['median']:.2f} s (min {import_s['min']:.2f}, max {import_s['max']:.2f})"
    )
    print(
        f"ratio of medians:               {ratio:.2f}x  (goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})"
    )
    print(
        f"torchscope tree vit_h_14 cold:  median {vit_s['median']:.2f} s (min {vit_s['min']:.2f}, max {vit_s['max']:.2f}) "
        f"over {args.vit_rounds} runs, --no-cache"
    )
    print(
        f"torchscope tree vit_h_14 warm:  median {warm_s['median']:.2f} s (min {warm_s['min']:.2f}, max {warm_s['max']:.2f}) "
        f"over {args.vit_rounds} runs, cache primed (goal < 3 s: {'met' if warm_s['median'] < 3 else 'NOT met'})"
    )
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    print(
        f"CPU seconds (median, user+sys): tree resnet18 {cpu['tree']:.2f}, import {cpu['import']:.2f}, "
        f"tree vit_h_14 cold {cpu['vit']:.2f}, warm {cpu['vit_warm']:.2f}; ratio {cpu['tree'] / cpu['import']:.2f}x"
    )
    print(
        f"load average at the end:        {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "raw": {
                        "tree_resnet18": tree_times,
                        "import": import_times,
                        "tree_vit_h_14": vit_times,
                        "tree_vit_h_14_warm": warm_times,
                    },
                    "cpu_raw": CPU,
                    "summary": {
                        "tree_resnet18": tree_s,
                        "import": import_s,
                        "tree_vit_h_14": vit_s,
                        "tree_vit_h_14_warm": warm_s,
                    },
                    "ratio": ratio,
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
