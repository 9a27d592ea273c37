"""The reference fine-tune benchmark behind ``torchscope bench``, one module per job.

- :mod:`~torchscope._bench.schema`: :class:`BenchConfig` (the settings) and :class:`BenchResult`
  (what was measured, with its verdicts), plain data, no torch;
- :mod:`~torchscope._bench.stats` and :mod:`~torchscope._bench.efficiency`: the arithmetic, no torch;
- :mod:`~torchscope._bench.device` and :mod:`~torchscope._bench.environment`: device, process
  group, clock, memory, matmul peak, and where it ran;
- :mod:`~torchscope._bench.data`: synthetic batches or an ImageFolder;
- :mod:`~torchscope._bench.loops`: the training step, the baseline loop, warm-up, FLOPs;
- :mod:`~torchscope._bench.batchsize`: ``--batch-size auto``;
- :mod:`~torchscope._bench.plan`, :mod:`~torchscope._bench.mode` and :mod:`~torchscope._bench.run`:
  checking the settings, one mode's run, and the entry points.

Names are re-exported lazily, so importing the schema (to render or compare saved results) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "SCHEMA": "torchscope._bench.schema",
    "RATIO_GOAL": "torchscope._bench.schema",
    "BenchConfig": "torchscope._bench.schema",
    "BenchResult": "torchscope._bench.schema",
    "ModeResult": "torchscope._bench.schema",
    "efficiency": "torchscope._bench.efficiency",
    "find_batch_size": "torchscope._bench.batchsize",
    "is_oom_error": "torchscope._bench.batchsize",
    "measure_matmul_peak": "torchscope._bench.device",
    "bench": "torchscope._bench.run",
    "run_bench": "torchscope._bench.run",
}

__all__ = [
    "RATIO_GOAL",
    "SCHEMA",
    "BenchConfig",
    "BenchResult",
    "ModeResult",
    "bench",
    "efficiency",
    "find_batch_size",
    "is_oom_error",
    "measure_matmul_peak",
    "run_bench",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchscope._bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from torchscope._bench.batchsize import find_batch_size, is_oom_error
    from torchscope._bench.device import measure_matmul_peak
    from torchscope._bench.efficiency import efficiency
    from torchscope._bench.run import bench, run_bench
    from torchscope._bench.schema import RATIO_GOAL, SCHEMA, BenchConfig, BenchResult, ModeResult
