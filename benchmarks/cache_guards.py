"""How fast the guards refuse: an oversized tree-cache entry, and ``bench`` into a read-only folder.

The tests assert what these guards do (one bounded read of an oversized entry; ``bench`` exits 2
before anything is loaded or timed); this script measures how long they take, which depends on the
machine. Goals: reading a planted 80 MB cache entry < 0.5 s; ``torchscope bench`` refusing a
read-only output folder < 5 s (a subprocess, import included). Raw times go to ``--json``.

    python benchmarks/cache_guards.py --rounds 5 --json cache_guards.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = Path(__file__).resolve().parent.parent / "tests" / "zoo.py"


def oversized_entry_read(folder: Path) -> float:
    """Seconds for ``load_cached_tree`` to refuse an 80 MB entry planted under a real key."""
    os.environ["TORCHSCOPE_CACHE_DIR"] = str(folder)
    from torchscope._treecache import MAX_ENTRY_BYTES, load_cached_tree, tree_cache_key

    key = tree_cache_key("resnet18")
    if key is None:
        raise SystemExit("resnet18 has no cache key here (torchvision missing?)")
    path = folder / "tree" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b'{"schema": "planted"}\n')
        for _ in range(80):
            fh.write(b" " * (1 << 20))
    assert path.stat().st_size > MAX_ENTRY_BYTES
    start = time.perf_counter()
    result = load_cached_tree(key)
    elapsed = time.perf_counter() - start
    if result is not None:
        raise SystemExit("the planted entry was accepted")
    return elapsed


def read_only_refusal(folder: Path) -> float:
    """Seconds for ``torchscope bench`` to exit 2 on an output path in a read-only folder."""
    locked = folder / "locked"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o500)
    cmd = [sys.executable, "-m", "torchscope", "bench", "--model", f"{ZOO}:SmallCNN", "--mode", "frozen",
           "--no-baseline", "--no-check", "--no-progress", "--output", str(locked / "run.json")]  # fmt: skip
    try:
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
    finally:
        locked.chmod(0o700)
    if done.returncode != 2:
        raise SystemExit(f"expected exit 2, got {done.returncode}: {done.stderr.strip()}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the raw times here")
    ns = parser.parse_args(argv)
    raw: dict[str, list[float]] = {"oversized_entry_read_s": []}
    as_root = os.geteuid() == 0
    if as_root:
        print("running as root: root writes into read-only folders, so the refusal is not measured")
    else:
        raw["read_only_refusal_s"] = []
    for _ in range(ns.rounds):  # interleaved, so machine load hits both alike
        with tempfile.TemporaryDirectory() as tmp:
            raw["oversized_entry_read_s"].append(oversized_entry_read(Path(tmp)))
        if not as_root:
            with tempfile.TemporaryDirectory() as tmp:
                raw["read_only_refusal_s"].append(read_only_refusal(Path(tmp)))
    goals = {"oversized_entry_read_s": 0.5, "read_only_refusal_s": 5.0}
    for name, times in raw.items():
        median = statistics.median(times)
        verdict = "ok" if median < goals[name] else "over the goal"
        print(f"{name:24} median {median:.3f} s (goal < {goals[name]} s, {len(times)} rounds): {verdict}")
    if ns.json is not None:
        ns.json.write_text(json.dumps({"raw": raw, "goals": goals}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
