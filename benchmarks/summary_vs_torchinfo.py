"""torchscope.summary against torchinfo.summary: the same models, interleaved, in one process.

For each model, on the CPU with a real forward pass and on the meta device (shapes and MACs need
no arithmetic), both tools summarise the model ``--repeat`` times, alternating which goes first;
the medians (wall time, and the process's CPU time, steadier on a shared machine) and their
ratio (torchinfo / torchscope: above 1 means torchscope is faster) are printed with the ratio of
the first, cold calls (torchscope's meta shape cache emptied), and saved as JSON with ``--json PATH``. Both run with their defaults (torchinfo with
``verbose=0`` so that printing is not timed; torchscope also runs the other train/eval mode).
A plain eval forward pass under ``no_grad`` is timed in the same rotation: with a real forward pass
the CPU time each tool adds to it (its overhead, from the minima) is printed too, since there the
ratio tends to 1 as the forward pass dominates.

    python benchmarks/summary_vs_torchinfo.py [--repeat 5] [--models resnet50,lstm] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torchinfo
import torchvision
from torch import nn

import torchscope
from torchscope._flops import metacache


class LSTMLanguageModel(nn.Module):
    """A 2-layer LSTM word language model (PyTorch's examples, medium): 650 wide, vocab 10000."""

    def __init__(self, vocab: int = 10_000, dim: int = 650) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, num_layers=2)
        self.decoder = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rnn(self.embed(tokens))[0])


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], torch.dtype]] = {
    "resnet50": (torchvision.models.resnet50, (1, 3, 224, 224), torch.float32),
    "densenet121": (torchvision.models.densenet121, (1, 3, 224, 224), torch.float32),
    "vit_b_16": (torchvision.models.vit_b_16, (1, 3, 224, 224), torch.float32),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, (1, 3, 224, 224), torch.float32),
    "lstm": (LSTMLanguageModel, (35, 20), torch.int64),
}


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    # wall clock, and this process's CPU time (steadier on a shared machine; the meta device and
    # the Python overhead run on one thread)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(name: str, device: str, repeat: int) -> dict[str, Any]:
    build, size, dtype = MODELS[name]
    with torch.device(device):
        model = build()
    x = torch.randint(0, 2, size, device=device) if dtype == torch.int64 else torch.randn(size, device=device)

    def ours() -> Any:
        return torchscope.summary(model, input_data=x)

    def theirs() -> Any:
        return torchinfo.summary(model, input_data=[x], device=device, verbose=0)

    def plain() -> Any:
        # the forward pass both tools run (eval, no grad): what each adds on top is its overhead
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model(x)
        finally:
            model.train(training)

    metacache.clear()
    cold = {"torchscope": _timed(ours)[0], "torchinfo": _timed(theirs)[0]}  # first calls: imports, caches
    plain()
    wall: dict[str, list[float]] = {"torchscope": [], "torchinfo": [], "forward": []}
    cpu: dict[str, list[float]] = {"torchscope": [], "torchinfo": [], "forward": []}
    for i in range(repeat):
        order = [("torchscope", ours), ("torchinfo", theirs), ("forward", plain)]
        order = order[i % 3 :] + order[: i % 3]
        for label, fn in order if i % 2 == 0 else order[::-1]:
            w, c = _timed(fn)
            wall[label].append(w)
            cpu[label].append(c)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "model": name,
        "device": device,
        "cold_s": cold,
        "median_s": med,
        "median_cpu_s": med_cpu,
        "wall_s": wall,
        "cpu_s": cpu,
        "ratio": med["torchinfo"] / med["torchscope"],
        "ratio_cpu": med_cpu["torchinfo"] / med_cpu["torchscope"],
        "ratio_cold": cold["torchinfo"] / cold["torchscope"],
        # CPU time each tool adds to a plain forward pass (minima: the least disturbed runs);
        # steadier than the ratio when the forward pass is most of the time
        "overhead_cpu_s": {k: min(cpu[k]) - min(cpu["forward"]) for k in ("torchscope", "torchinfo")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--devices", default="cpu,meta")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's); 1 on a shared machine",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, torchinfo {torchinfo.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    rows = []
    print(
        "medians of wall time (CPU time of the process); ratio = torchinfo / torchscope, > 1: torchscope faster"
    )
    print("overhead (real forward only): minimum CPU time minus that of a plain eval forward under no_grad")
    print(
        f"{'model':<16} {'device':<6} {'torchscope':>20} {'torchinfo':>20} {'ratio':>7} {'(cpu)':>7} {'cold':>6}"
        f" {'overhead ours / theirs':>24}"
    )
    for device in args.devices.split(","):
        for name in args.models.split(","):
            row = measure(name, device, args.repeat)
            rows.append(row)
            m, c = row["median_s"], row["median_cpu_s"]
            print(
                f"{name:<16} {device:<6} "
                + " ".join(f"{m[k] * 1e3:>9.1f} ({c[k] * 1e3:>6.1f}) ms" for k in ("torchscope", "torchinfo"))
                + f" {row['ratio']:>6.2f}x {row['ratio_cpu']:>6.2f}x {row['ratio_cold']:>5.2f}x"
                + (
                    " {:>10.1f} / {:>7.1f} ms".format(
                        *(row["overhead_cpu_s"][k] * 1e3 for k in ("torchscope", "torchinfo"))
                    )
                    if device != "meta"
                    else ""
                ),
                flush=True,
            )
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(
                {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, f, indent=1
            )


if __name__ == "__main__":
    main()
