"""The plain data :func:`~torchscope.summary` returns: tensors, module calls, the summary itself."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from torchscope._format import format_shape
from torchscope._inputs import flatten_outputs
from torchscope._result import Frozen, Record, Result, record

# @record: a frozen dataclass with Frozen's shared methods, no function compiled at import (the
# first summary() pays for this module)


@record
class TensorSpec(Record):
    """Name, shape and dtype of one tensor that went in or came out."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@record
class ModuleRow(Record):
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
    weights: tuple[TensorSpec, ...] = ()  # the module's own parameters (torchinfo's verbose=2 rows)

    DERIVED = ("mult_adds_lower_bound", "shapes_known")

    @property
    def mult_adds_lower_bound(self) -> bool:
        """Ops with real arithmetic and no formula ran in this call: ``mult_adds`` is a lower bound."""
        return bool(self.uncounted_ops)

    @property
    def shapes_known(self) -> bool:
        """False inside a TorchScript module (no hook ran there)."""
        return not self.opaque

    # torchinfo's LayerInfo names, so code that walks ``summary_list`` keeps working
    @property
    def class_name(self) -> str:
        return self.type

    @property
    def var_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def num_params(self) -> int:
        return self.params

    @property
    def macs(self) -> int:
        return self.mult_adds or 0

    @property
    def is_recursive(self) -> bool:
        """A second or later call of the same module (torchinfo's ``(recursive)`` rows)."""
        return self.call > 0

    @property
    def executed(self) -> bool:
        return self.completed and self.mult_adds is not None

    @property
    def input_size(self) -> list[int]:
        return list(self.inputs[0].shape) if self.inputs else []

    @property
    def output_size(self) -> list[int]:
        return list(self.outputs[0].shape) if self.outputs else []


@record
class DisplayOptions(Frozen):
    """How to render a summary by default (torchinfo's display keywords); not part of the data."""

    depth: int | None = None
    columns: tuple[str, ...] | None = None  # torchinfo column names; None: ours
    col_width: int | None = None
    row_settings: tuple[str, ...] = ()
    verbose: int = 1

    # torchinfo's FormattingOptions names
    @property
    def max_depth(self) -> int | None:
        return self.depth

    @property
    def col_names(self) -> tuple[str, ...] | None:
        return self.columns


@record
class Summary(Result):
    """What :func:`summary` collected; plain data, render it with ``torchscope.render.summary``.

    ``total_mult_adds`` is None when no forward pass ran (no input given: parameters only). When an
    op with real arithmetic but no FLOP formula ran (``uncounted_ops``), the total is a lower bound
    (``mult_adds_lower_bound``) and every output says so. ``ops`` maps every aten op that ran to
    ``counted``, ``zero-cost`` or ``missing`` (see :mod:`torchscope._flops.ops`).

    It has torchinfo's ``ModelStatistics`` fields with their meaning: ``total_params``,
    ``trainable_params``, ``total_mult_adds``, ``total_input`` (bytes of the inputs' storages),
    ``total_output_bytes`` (outputs of the leaf layers with parameters, twice: forward and
    backward), ``total_param_bytes``, ``summary_list`` (the rows), ``formatting`` (the display
    options), ``to_megabytes`` and ``float_to_megabytes``. Where ours differ: each tied or shared
    tensor counts once (torchinfo counts it in every module that holds it), parameters held by a
    container module (ViT's ``class_token``) count in ``total_param_bytes`` (torchinfo leaves them
    out), and ``total_mult_adds`` is exact multiply-accumulates from the aten ops (torchinfo adds one
    per bias element and estimates norm layers), None when no forward pass ran.
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
    input_bytes: int = 0  # torchinfo's total_input: sys.getsizeof of each input tensor's storage
    total_output_bytes: int = 0
    display: DisplayOptions | None = field(default=None, compare=False, repr=False)

    SCHEMA = "torchscope.summary/1"
    DERIVED = ("total_flops", "mult_adds_lower_bound")
    MAPPINGS = ("mult_adds_by_op", "ops")
    SKIP = ("display",)  # how to render it by default, not data

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

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per module call: what :meth:`to_dataframe` holds."""
        return [
            {
                "name": r.name, "type": r.type, "depth": r.depth, "call": r.call,
                "input_shape": [list(t.shape) for t in r.inputs], "output_shape": [list(t.shape) for t in r.outputs],
                "params": r.params, "trainable_params": r.trainable_params, "mult_adds": r.mult_adds,
            }
            for r in self.rows
        ]  # fmt: skip

    @property
    def total_input(self) -> int:
        """Bytes of the inputs, as torchinfo's ``total_input`` (its ``Input size (MB)``)."""
        return self.input_bytes

    @property
    def total_param_bytes(self) -> int:
        """Bytes of the parameters, each tensor once (torchinfo's ``Params size (MB)``)."""
        return self.param_bytes

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def summary_list(self) -> list[ModuleRow]:
        """The rows, one per module call, as torchinfo's ``summary_list`` of layers."""
        return list(self.rows)

    @property
    def formatting(self) -> DisplayOptions:
        """The display options (torchinfo's ``formatting``)."""
        return self.display if self.display is not None else DisplayOptions()

    @property
    def input_size(self) -> list[list[int]]:
        return [list(t.shape) for t in self.inputs]

    @staticmethod
    def to_megabytes(num: int) -> float:
        """Bytes to megabytes (10**6), as torchinfo."""
        return num / 1e6

    @staticmethod
    def float_to_megabytes(num: int) -> float:
        """A count of 4-byte floats to megabytes, as torchinfo."""
        return num * 4 / 1e6


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """``float32`` for ``torch.float32`` (cached: it runs for every tensor of every module call)."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


def own_weights(module: Any) -> tuple[TensorSpec, ...]:
    """TensorSpecs of a module's own parameters (not its children's), by their attribute names."""
    return tuple(
        TensorSpec(name, tuple(p.shape), dtype_name(p.dtype))
        for name, p in module._parameters.items()
        if p is not None
    )


def specs(obj: Any, prefix: str) -> tuple[TensorSpec, ...]:
    """TensorSpecs of every tensor in ``obj`` (see :func:`flatten_outputs`)."""
    return tuple(
        TensorSpec(name, tuple(t.shape), dtype_name(t.dtype)) for name, t in flatten_outputs(obj, prefix)
    )


def shapes_text(items: tuple[TensorSpec, ...]) -> str:
    """``[1, 3, 8, 8], [1, 10]`` for a message; ``no tensors`` when empty."""
    return ", ".join(format_shape(t.shape) for t in items) or "no tensors"
