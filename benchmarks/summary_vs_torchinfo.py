"""The first call, as users feel it: torchscope.summary against torchinfo.summary in fresh processes.

Users run a summary once per process, so what counts is the import of the tool plus its first
call. Each measurement is a fresh process at one thread, forked from a parent that has imported
torch and torchvision but neither tool: the child builds the model and its input (not timed), then
times ``import torchscope`` + the first ``torchscope.summary(...)``, or ``import torchinfo`` + the
first ``torchinfo.summary(...)``, with every cache of either tool cold. The two tools alternate
(which goes first flips every round), ``--repeat`` rounds (at least 5), on the CPU with a real
forward pass and on the meta device (a model built on meta: shapes and mult-adds, no
arithmetic). Printed: the medians of wall time and of the child's CPU time (steadier on a
shared machine), and their ratio, torchinfo / torchscope (above 1: torchscope faster).
``--json PATH`` keeps every raw time. Both run quiet (``verbose=0``): printing is not timed.
Bytecode is cached for both (an uncounted warm-up child per tool writes it, also under
``PYTHONDONTWRITEBYTECODE``), as for installed packages. POSIX only (``os.fork``).

    python benchmarks/summary_vs_torchinfo.py [--repeat 5] [--models resnet50,lstm] [--devices cpu,meta] [--json out.json]
"""

from __future__ import annotations

import os

os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # before torch is imported

import argparse
import importlib.metadata
import json
import statistics
import sys
import time
from typing import Any

import torch
import torchvision
from torch import nn

MODELS = ("resnet50", "vit_b_16", "densenet121", "efficientnet_b0", "lstm")
TOOLS = ("torchscope", "torchinfo")


class LSTMLanguageModel(nn.Module):
    """A 2-layer LSTM word language model (PyTorch's examples, medium): 650 wide, vocab 10000."""

    def __init__(self, vocab: int = 10_000, dim: int = 650) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, num_layers=2)
        self.decoder = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rnn(self.embed(tokens))[0])


def _child(tool: str, name: str, device: str) -> dict[str, Any]:
    # runs in the forked process: neither tool has been imported in it
    torch.manual_seed(0)
    with torch.device(device):
        if name == "lstm":
            model, x = LSTMLanguageModel(), torch.randint(0, 2, (35, 20))
        else:
            model, x = getattr(torchvision.models, name)(), torch.randn(1, 3, 224, 224)
    wall, cpu = time.perf_counter(), time.process_time()
    if tool == "torchscope":
        import torchscope

        result: Any = torchscope.summary(model, input_data=x, verbose=0)
    else:
        import torchinfo

        result = torchinfo.summary(model, input_data=[x], device=device, verbose=0)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "params": result.total_params}


def first_call(tool: str, name: str, device: str) -> dict[str, Any]:
    """One fresh process's import + first call, timed inside it."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        code = 0
        try:
            out = json.dumps(_child(tool, name, device))
        except BaseException as exc:
            out, code = json.dumps({"error": f"{type(exc).__name__}: {exc}"}), 1
        with os.fdopen(write, "w") as f:
            f.write(out)
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        data = json.loads(f.read() or '{"error": "the child died"}')
    os.waitpid(pid, 0)
    if "error" in data:
        raise SystemExit(f"{tool} on {name}/{device} failed: {data['error']}")
    return dict(data)


def stats(times: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per tool and the ratios torchinfo / torchscope (pure: the raw times in, numbers out)."""
    med = {t: statistics.median(r["wall"] for r in times[t]) for t in TOOLS}
    med_cpu = {t: statistics.median(r["cpu"] for r in times[t]) for t in TOOLS}
    return {
        "median_s": med,
        "median_cpu_s": med_cpu,
        "ratio": med["torchinfo"] / med["torchscope"],
        "ratio_cpu": med_cpu["torchinfo"] / med_cpu["torchscope"],
    }


def measure(name: str, device: str, repeat: int) -> dict[str, Any]:
    times: dict[str, list[dict[str, Any]]] = {t: [] for t in TOOLS}
    for i in range(repeat):
        for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:  # interleaved: each goes first half the time
            times[tool].append(first_call(tool, name, device))
    counts = {r["params"] for t in TOOLS for r in times[t]}
    return {"model": name, "device": device, "raw": times, "total_params": sorted(counts), **stats(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--devices", default="cpu,meta")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5: a median of fewer fresh processes is noise")
    if "torchscope" in sys.modules or "torchinfo" in sys.modules:
        raise SystemExit("the parent must not import either tool: the children would not be fresh")
    torch.set_num_threads(1)
    # installed packages come with their bytecode (torchinfo's is in site-packages): under
    # PYTHONDONTWRITEBYTECODE=1 a source checkout of torchscope would be compiled in every child
    # (about 40 ms of its import) and torchinfo never
    sys.dont_write_bytecode = False
    for tool in TOOLS:
        first_call(tool, "lstm", "meta")  # not counted: writes the bytecode, warms the disk cache
    version = importlib.metadata.version("torchinfo")
    print(f"torch {torch.__version__}, torchinfo {version}, 1 thread, a fresh (forked) process per call")
    print("import + first call; medians of wall time (child CPU time); ratio = torchinfo / torchscope")
    print(f"{'model':<16} {'device':<6} {'torchscope':>20} {'torchinfo':>20} {'ratio':>7} {'(cpu)':>7}")
    rows = []
    for device in args.devices.split(","):
        for name in args.models.split(","):
            row = measure(name, device, args.repeat)
            rows.append(row)
            m, c = row["median_s"], row["median_cpu_s"]
            print(
                f"{name:<16} {device:<6} "
                + " ".join(f"{m[t] * 1e3:>9.1f} ({c[t] * 1e3:>6.1f}) ms" for t in TOOLS)
                + f" {row['ratio']:>6.2f}x {row['ratio_cpu']:>6.2f}x",
                flush=True,
            )
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump({"torch": torch.__version__, "repeat": args.repeat, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
