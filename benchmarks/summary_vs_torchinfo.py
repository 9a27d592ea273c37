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
``--json PATH`` keeps every raw time. ``--baseline DIR`` adds a third tool interleaved with
the two, the torchscope package found in DIR (another checkout, e.g. ``git worktree add DIR main``),
so a change is measured against its base in the same run, under the same load. Both run quiet (``verbose=0``): printing is not timed.
Bytecode is cached for both (an uncounted warm-up child per tool writes it, also under
``PYTHONDONTWRITEBYTECODE``), as for installed packages. POSIX only (``os.fork``).

    python benchmarks/summary_vs_torchinfo.py [--repeat 5] [--models resnet50,lstm] [--devices cpu,meta]
        [--baseline DIR] [--json out.json]
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
BASELINE = "baseline"  # --baseline: torchscope imported from another checkout
_baseline_dir: str | None = None


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
    if tool == BASELINE and _baseline_dir is not None:
        sys.path.insert(0, _baseline_dir)  # in this child only: its torchscope, not ours
    wall, cpu = time.perf_counter(), time.process_time()
    if tool in ("torchscope", BASELINE):
        import torchscope

        result: Any = torchscope.summary(model, input_data=x, verbose=0)
    else:
        import torchinfo

        result = torchinfo.summary(model, input_data=[x], device=device, verbose=0)
    elapsed, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    # where the package came from (the raw times in --json say which checkout each one timed)
    source = os.path.dirname(str(sys.modules["torchinfo" if tool == "torchinfo" else "torchscope"].__file__))
    return {"wall": elapsed, "cpu": cpu_s, "params": result.total_params, "source": source}


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
    """Medians per tool and the ratios torchinfo / torchscope (and torchinfo / baseline when it ran)
    (pure: the raw times in, numbers out)."""
    med = {t: statistics.median(r["wall"] for r in runs) for t, runs in times.items()}
    med_cpu = {t: statistics.median(r["cpu"] for r in runs) for t, runs in times.items()}
    out = {
        "median_s": med,
        "median_cpu_s": med_cpu,
        "ratio": med["torchinfo"] / med["torchscope"],
        "ratio_cpu": med_cpu["torchinfo"] / med_cpu["torchscope"],
    }
    if BASELINE in times:
        out["baseline_ratio"] = med["torchinfo"] / med[BASELINE]
        out["baseline_ratio_cpu"] = med_cpu["torchinfo"] / med_cpu[BASELINE]
    return out


def measure(name: str, device: str, repeat: int, tools: tuple[str, ...] = TOOLS) -> dict[str, Any]:
    times: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    for i in range(repeat):
        # interleaved: the order rotates (two tools: flips) so that each goes first as often
        k = i % len(tools)
        order = tools[k:] + tools[:k] if len(tools) > 2 else (tools if i % 2 == 0 else tools[::-1])
        for tool in order:
            times[tool].append(first_call(tool, name, device))
    counts = {r["params"] for t in tools for r in times[t]}
    return {"model": name, "device": device, "raw": times, "total_params": sorted(counts), **stats(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--devices", default="cpu,meta")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--baseline", default=None, help="a directory holding another torchscope checkout")
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be at least 5: a median of fewer fresh processes is noise")
    if "torchscope" in sys.modules or "torchinfo" in sys.modules:
        raise SystemExit("the parent must not import either tool: the children would not be fresh")
    tools = TOOLS
    if args.baseline is not None:
        global _baseline_dir
        _baseline_dir = os.path.abspath(args.baseline)
        if not os.path.isfile(os.path.join(_baseline_dir, "torchscope", "__init__.py")):
            parser.error(f"--baseline {args.baseline!r} holds no torchscope package; give a checkout's root")
        tools = (*TOOLS, BASELINE)
    torch.set_num_threads(1)
    # installed packages come with their bytecode (torchinfo's is in site-packages): under
    # PYTHONDONTWRITEBYTECODE=1 a source checkout of torchscope would be compiled in every child
    # (about 40 ms of its import) and torchinfo never
    sys.dont_write_bytecode = False
    for tool in tools:
        first_call(tool, "lstm", "meta")  # not counted: writes the bytecode, warms the disk cache
    version = importlib.metadata.version("torchinfo")
    print(f"torch {torch.__version__}, torchinfo {version}, 1 thread, a fresh (forked) process per call")
    print("import + first call; medians of wall time (child CPU time); ratio = torchinfo / torchscope")
    header = f"{'model':<16} {'device':<6} {'torchscope':>20} {'torchinfo':>20} {'ratio':>7} {'(cpu)':>7}"
    if args.baseline is not None:
        header += f" {'baseline':>20} {'ratio':>7} {'(cpu)':>7}"
    print(header)
    rows = []
    for device in args.devices.split(","):
        for name in args.models.split(","):
            row = measure(name, device, args.repeat, tools)
            rows.append(row)
            m, c = row["median_s"], row["median_cpu_s"]
            line = (
                f"{name:<16} {device:<6} "
                + " ".join(f"{m[t] * 1e3:>9.1f} ({c[t] * 1e3:>6.1f}) ms" for t in TOOLS)
                + f" {row['ratio']:>6.2f}x {row['ratio_cpu']:>6.2f}x"
            )
            if BASELINE in m:
                line += (
                    f" {m[BASELINE] * 1e3:>9.1f} ({c[BASELINE] * 1e3:>6.1f}) ms"
                    f" {row['baseline_ratio']:>6.2f}x {row['baseline_ratio_cpu']:>6.2f}x"
                )
            print(line, flush=True)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(
                {"torch": torch.__version__, "repeat": args.repeat, "baseline": args.baseline, "rows": rows}, f, indent=1
            )


if __name__ == "__main__":
    main()
