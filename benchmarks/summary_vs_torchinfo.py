"""The first call, as users feel it: torchscope.summary against torchinfo.summary in fresh processes.

Users run a summary once per process, so what counts is the import of the tool plus its first
call. Each measurement is a fresh interpreter at one thread that imports torch and torchvision,
builds the model and its input (not timed), then times ``import torchscope`` + the first
``torchscope.summary(...)``, or ``import torchinfo`` + the first ``torchinfo.summary(...)``. The
two tools alternate (which goes first flips every round), ``--repeat`` rounds (at least 5), on
the CPU with a real forward pass and on the meta device (a model built on meta: shapes and
mult-adds with no arithmetic). Printed: the medians of wall time and of the child's CPU time,
and their ratio, torchinfo / torchscope (above 1: torchscope faster). ``--json PATH`` keeps every
raw time. Both run quiet (``verbose=0``): printing is not timed. Bytecode is cached for both (one
uncounted warm-up process per tool and model), as for installed packages.

    python benchmarks/summary_vs_torchinfo.py [--repeat 5] [--models resnet50,lstm] [--devices cpu,meta] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

MODELS = ("resnet50", "vit_b_16", "densenet121", "efficientnet_b0", "lstm")
TOOLS = ("torchscope", "torchinfo")

# the child: one fresh process, one tool, one first call
CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import torchvision
from torch import nn

tool, name, device = sys.argv[1:4]


class LSTMLanguageModel(nn.Module):
    # a 2-layer LSTM word language model (PyTorch's examples, medium): 650 wide, vocab 10000
    def __init__(self, vocab=10_000, dim=650):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, num_layers=2)
        self.decoder = nn.Linear(dim, vocab)

    def forward(self, tokens):
        return self.decoder(self.rnn(self.embed(tokens))[0])


torch.manual_seed(0)
with torch.device(device):
    if name == "lstm":
        model, x = LSTMLanguageModel(), torch.randint(0, 2, (35, 20))
    else:
        model, x = getattr(torchvision.models, name)(), torch.randn(1, 3, 224, 224)
wall, cpu = time.perf_counter(), time.process_time()
if tool == "torchscope":
    import torchscope
    result = torchscope.summary(model, input_data=x, verbose=0)
else:
    import torchinfo
    result = torchinfo.summary(model, input_data=[x], device=device, verbose=0)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"wall": wall, "cpu": cpu, "params": result.total_params}))
"""


def first_call(tool: str, name: str, device: str) -> dict[str, Any]:
    """One fresh process's import + first call, timed inside it."""
    # bytecode cached, as for an installed package (the first, warm-up call writes it)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-c", CHILD, tool, name, device], capture_output=True, text=True, env=env, timeout=600
    )
    if run.returncode != 0:
        raise SystemExit(f"{tool} on {name}/{device} failed:\n{run.stderr}")
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


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
    for tool in TOOLS:
        first_call(tool, name, device)  # not counted: writes the bytecode, warms the disk cache
    for i in range(repeat):
        for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:  # interleaved: each goes first half the time
            times[tool].append(first_call(tool, name, device))
    counts = {r["params"] for t in TOOLS for r in times[t]}
    return {"model": name, "device": device, "raw": times, "total_params": sorted(counts), **stats(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--devices", default="cpu,meta")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5: a median of fewer fresh processes is noise")
    import torch
    import torchinfo

    print(f"torch {torch.__version__}, torchinfo {torchinfo.__version__}, 1 thread, fresh process per call")
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
