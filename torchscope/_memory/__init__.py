"""The memory predictor: the peak of a training step under fake tensors, its breakdown, ``--fit``.

One module per job: :mod:`.tracer` (the storage-tracking dispatch mode), :mod:`.step` (the step and
its options), :mod:`.trace` (running it on fake weights with observing hooks), :mod:`.estimate` (the
report), :mod:`.fit` (the batch-size search), :mod:`.cards` (GPU sizes and the margin),
:mod:`.schema` (the result types, no torch), :mod:`.truth` (the real-CPU measurement it is checked
against), :mod:`.units` (byte sizes). Names are re-exported lazily, so the schema (and the renderer
that reads it) import without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "FitResult": "schema",
    "MemoryReport": "schema",
    "ModuleMemory": "schema",
    "estimate_memory": "estimate",
    "measured_peak": "truth",
}

__all__ = ["FitResult", "MemoryReport", "ModuleMemory", "estimate_memory", "measured_peak"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchscope._memory' has no attribute {name!r}")
    return getattr(importlib.import_module(f"torchscope._memory.{module}"), name)


if TYPE_CHECKING:  # pragma: no cover
    from torchscope._memory.estimate import estimate_memory
    from torchscope._memory.schema import FitResult, MemoryReport, ModuleMemory
    from torchscope._memory.truth import measured_peak
