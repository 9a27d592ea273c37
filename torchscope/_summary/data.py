"""The plain data :func:`~torchscope.summary` returns: tensors, module calls, the summary itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torchscope._format import format_shape
from torchscope._inputs import flatten_outputs


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one tensor that went in or came out."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ModuleRow:
    """One call of one module. A module called twice (shared) has two rows (``call`` 0 and 1)."""

    name: str  # qualified name; "" is the model itself
    type: str
    depth: int
    call: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    params: int  # of the module and its children, each tensor once
    trainable_params: int
    mult_adds: int | None  # of this call, children included; None without a forward pass
    uncounted_ops: tuple[str, ...]  # ops with real arithmetic and no formula: mult_adds is a lower bound
    completed: bool = True  # False for a call that raised and was caught by its caller
    kernel_size: tuple[int, ...] | None = None
    groups: int | None = None
    # inside a TorchScript module, where no Python hook runs: shapes and mult-adds unknown (not 0);
    # the scripted module's own row counts them
    opaque: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "depth": self.depth,
            "call": self.call,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "mult_adds": self.mult_adds,
            "mult_adds_lower_bound": bool(self.uncounted_ops),
            "uncounted_ops": list(self.uncounted_ops),
            "completed": self.completed,
            "kernel_size": list(self.kernel_size) if self.kernel_size is not None else None,
            "groups": self.groups,
            "shapes_known": not self.opaque,
        }


@dataclass(frozen=True)
class DisplayOptions:
    """How to render a summary by default (torchinfo's display keywords); not part of the data."""

    depth: int | None = None
    columns: tuple[str, ...] | None = None  # torchinfo column names; None: ours
    col_width: int | None = None
    row_settings: tuple[str, ...] = ()
    verbose: int = 1


@dataclass(frozen=True)
class Summary:
    """What :func:`summary` collected; plain data, render it with ``torchscope.render.summary``.

    ``total_mult_adds`` is None when no forward pass ran (no input given: parameters only). When an
    op with real arithmetic but no FLOP formula ran (``uncounted_ops``), the total is a lower bound
    (``mult_adds_lower_bound``) and every output says so. ``ops`` maps every aten op that ran to
    ``counted``, ``zero-cost`` or ``missing`` (see :mod:`torchscope._flops.ops`).
    """

    model: str
    mode: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    output_type: str
    rows: tuple[ModuleRow, ...]
    total_params: int
    trainable_params: int
    param_bytes: int
    total_mult_adds: int | None
    mult_adds_by_op: tuple[tuple[str, int], ...]
    uncounted_ops: tuple[str, ...]
    not_called: tuple[str, ...] = ()
    other_mode: str | None = None
    other_output_type: str | None = None
    other_outputs: tuple[TensorSpec, ...] = ()
    modes_differ: bool = False
    notes: tuple[str, ...] = ()
    ops: tuple[tuple[str, str], ...] = ()
    display: DisplayOptions | None = field(default=None, compare=False, repr=False)

    @property
    def forward_ran(self) -> bool:
        return self.total_mult_adds is not None

    @property
    def mult_adds_lower_bound(self) -> bool:
        """True when ops with real arithmetic ran without a formula: the true total is higher."""
        return bool(self.uncounted_ops)

    @property
    def total_flops(self) -> int | None:
        """FLOPs counted as 2 per multiply-accumulate."""
        return None if self.total_mult_adds is None else 2 * self.total_mult_adds

    def __str__(self) -> str:
        # print(torchscope.summary(...)) shows the table, as torchinfo's result does
        from torchscope.render.summary import summary_text

        return summary_text(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mode": self.mode,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "output_type": self.output_type,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "param_bytes": self.param_bytes,
            "total_mult_adds": self.total_mult_adds,
            "total_flops": self.total_flops,
            "mult_adds_lower_bound": self.mult_adds_lower_bound,
            "mult_adds_by_op": dict(self.mult_adds_by_op),
            "uncounted_ops": list(self.uncounted_ops),
            "ops": dict(self.ops),
            "not_called": list(self.not_called),
            "other_mode": self.other_mode,
            "other_output_type": self.other_output_type,
            "other_outputs": [t.to_dict() for t in self.other_outputs],
            "modes_differ": self.modes_differ,
            "notes": list(self.notes),
            "rows": [r.to_dict() for r in self.rows],
        }


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """``float32`` for ``torch.float32`` (cached: it runs for every tensor of every module call)."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


def specs(obj: Any, prefix: str) -> tuple[TensorSpec, ...]:
    """TensorSpecs of every tensor in ``obj`` (see :func:`flatten_outputs`)."""
    return tuple(
        TensorSpec(name, tuple(t.shape), dtype_name(t.dtype)) for name, t in flatten_outputs(obj, prefix)
    )


def shapes_text(items: tuple[TensorSpec, ...]) -> str:
    """``[1, 3, 8, 8], [1, 10]`` for a message; ``no tensors`` when empty."""
    return ", ".join(format_shape(t.shape) for t in items) or "no tensors"
