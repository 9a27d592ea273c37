"""``collect_report``: tree, summary, activations, grads and a freeze check, as one plain-data report.

The HTML page (:mod:`torchscope.render.html`) and ``torchscope report --json`` both read the
:class:`ReportData` this returns; nothing re-runs the model to produce another format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TreeRow:
    """One module of the tree (pre-order)."""

    name: str
    type: str
    depth: int
    params: int
    freeze: str  # trainable / frozen / partial / none
    training: bool


@dataclass(frozen=True)
class LayerRow:
    """One module of the forward pass: shapes, params, mult-adds."""

    name: str
    type: str
    input_shape: str
    output_shape: str
    params: int | None
    mult_adds: int | None


@dataclass(frozen=True)
class ActivationRow:
    """Output statistics of one module call, in forward order."""

    name: str
    type: str
    shape: str
    mean: float | None
    std: float | None
    zero_frac: float | None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradRow:
    """Grad norm of one layer (the params it owns directly); frozen layers have none."""

    name: str
    type: str
    norm: float | None
    frozen: bool
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlockRow:
    """Params under one top-level child of the model."""

    name: str
    type: str
    params: int
    trainable_params: int


@dataclass(frozen=True)
class ViolationRow:
    """One broken freeze invariant, with its cause and fix."""

    kind: str
    name: str
    max_abs_change: float | None
    cause: str


@dataclass(frozen=True)
class ReportData:
    """Everything ``torchscope report`` shows, as plain data (``to_dict()`` is the ``--json``)."""

    title: str
    model_type: str
    total_params: int
    trainable_params: int
    frozen_params: int
    input_size: tuple[tuple[int, ...], ...] = ()
    generated_by: str = "torchscope"
    mult_adds: int | None = None
    modules_in_train_mode: int | None = None
    modules_in_eval_mode: int | None = None
    blocks: tuple[BlockRow, ...] = ()
    modules: tuple[TreeRow, ...] = ()
    layers: tuple[LayerRow, ...] = ()
    activations: tuple[ActivationRow, ...] = ()
    grads: tuple[GradRow, ...] = ()
    unused: tuple[str, ...] = ()
    check_ok: bool | None = None
    checks: tuple[str, ...] = ()
    violations: tuple[ViolationRow, ...] = ()
    check_summary: str = ""
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return asdict(self)
