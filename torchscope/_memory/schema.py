"""What ``estimate_memory`` returns: plain, frozen data (no torch import), rendered by ``render/memory``.

>>> r = ModuleMemory("features", parameters=1024, activations=2048)
>>> r.total, r.to_dict()["activations"]
(3072, 2048)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torchscope._result import Record, Result

KINDS = ("parameters", "buffers", "gradients", "optimizer state", "activations", "temporaries")
"""What a live byte at the peak is, strongest claim first (a saved parameter is a parameter)."""

PHASES = ("forward", "backward", "optimizer")


@dataclass(frozen=True)
class ModuleMemory(Record):
    """Bytes alive at the peak that belong to one top-level module.

    Parameters, buffers, gradients and optimizer state belong to the module owning the parameter;
    activations and temporaries to the module that was running (forward, or its backward) when they
    were made. ``(outside)`` is what no module made: the batch, the loss, the optimizer's scratch.
    """

    name: str
    parameters: int = 0
    buffers: int = 0
    gradients: int = 0
    optimizer_state: int = 0
    activations: int = 0
    temporaries: int = 0

    DERIVED = ("total",)

    @property
    def total(self) -> int:
        return (
            self.parameters + self.buffers + self.gradients + self.optimizer_state + self.activations
            + self.temporaries
        )  # fmt: skip



@dataclass(frozen=True)
class Margin(Record):
    """What ``--fit`` keeps free: the CUDA context, then a share for allocator fragmentation."""

    context_bytes: int
    fragmentation: float

    DERIVED = ("describe",)
    KEYS = (("describe", "description"),)

    def usable(self, capacity: int) -> int:
        """Bytes the predicted peak may use on a card of ``capacity`` bytes.

        >>> Margin(context_bytes=1024, fragmentation=0.1).usable(11264)
        9216
        """
        return max(0, int((capacity - self.context_bytes) * (1.0 - self.fragmentation)))

    def describe(self) -> str:
        from torchscope._format import format_bytes

        return (
            f"{format_bytes(self.context_bytes)} for the CUDA context, then "
            f"{self.fragmentation:.0%} for allocator fragmentation"
        )


@dataclass(frozen=True)
class FitResult(Record):
    """The largest batch size whose predicted peak fits ``usable`` bytes (0: none fits).

    ``peak`` is the traced peak at ``batch_size`` (0 only when nothing fits). ``at_limit``: the search
    stopped at ``search_limit`` with that batch still fitting, so every batch size up to the limit
    fits and the largest one that does is not known.
    """

    target: str
    capacity: int
    margin: Margin
    usable: int
    batch_size: int
    peak: int
    next_peak: int | None
    weights: int
    traces: int
    reason: str = ""
    search_limit: int = 0

    DERIVED = ("at_limit",)

    @property
    def at_limit(self) -> bool:
        return 0 < self.search_limit <= self.batch_size



@dataclass(frozen=True, repr=False)
class MemoryReport(Result):
    """The predicted peak of one step and what is alive at it.

    ``peak`` counts tensor storage the step needs at its high-water mark, each storage rounded to the
    device allocator's block (``block`` bytes), which is what ``torch.cuda.max_memory_allocated()``
    reports. It does not include the CUDA context, cuBLAS/cuDNN workspaces or allocator
    fragmentation: ``--fit`` keeps a margin for those (``notes`` says so).
    """

    model: str
    inputs: tuple[tuple[int, ...], ...]
    step: str
    device: str
    block: int
    optimizer: str
    amp: str
    dtype: str
    channels_last: bool
    grad_checkpointing: bool
    mode: str
    peak: int
    phase: str
    step_of_peak: int
    op: str
    breakdown: tuple[tuple[str, int], ...]
    modules: tuple[ModuleMemory, ...]
    weights: int
    trainable: int
    total_params: int
    fit: FitResult | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    SCHEMA = "torchscope.memory/1"
    MAPPINGS = ("breakdown",)

    @property
    def batch_size(self) -> int:
        return self.inputs[0][0] if self.inputs and self.inputs[0] else 1

    def kind(self, name: str) -> int:
        """Bytes of one kind (``"activations"``, ...) alive at the peak."""
        return dict(self.breakdown).get(name, 0)

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per top-level module, bytes by kind: what :meth:`to_dataframe` holds."""
        return [m.to_dict() for m in self.modules]
