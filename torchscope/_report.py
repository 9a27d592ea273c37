"""``collect_report``: tree, summary, activations, grads and a freeze check, as one plain-data report.

The HTML page (:mod:`torchscope.render.html`) and ``torchscope report --json`` both read the
:class:`ReportData` this returns; nothing re-runs the model to produce another format.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchscope._format import format_shape
from torchscope._progress import ProgressFn, tell
from torchscope.errors import SpecError, TorchscopeError

if TYPE_CHECKING:
    from torchscope._memory.schema import MemoryReport


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
    leaf: bool = True  # a module without children: the charts by depth use only these


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
    mult_adds_lower_bound: bool = False  # an op with arithmetic had no FLOP formula (see notes)
    modules_in_train_mode: int | None = None
    modules_in_eval_mode: int | None = None
    blocks: tuple[BlockRow, ...] = ()
    modules: tuple[TreeRow, ...] = ()
    layers: tuple[LayerRow, ...] = ()
    activations: tuple[ActivationRow, ...] = ()
    grads: tuple[GradRow, ...] = ()
    unused: tuple[str, ...] = ()
    check_ok: bool | None = None
    checks: tuple[str, ...] = ()  # the checks that held (looked at something, found nothing wrong)
    violations: tuple[ViolationRow, ...] = ()
    check_summary: str = ""
    not_checked: tuple[tuple[str, str], ...] = ()  # (kind, why): checks that had nothing to look at
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    memory: MemoryReport | None = None  # the predicted peak of two training steps (estimate_memory)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        data = asdict(self)
        data["memory"] = self.memory.to_dict() if self.memory is not None else None
        return data


def eval_frozen_norms(model: nn.Module) -> list[str]:
    """Put norm layers with running stats whose own params are all frozen in eval mode; their names.

    The fix for running statistics that drift under ``model.train()`` (``--eval-bn``).

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    >>> _ = net[1].requires_grad_(False)
    >>> eval_frozen_norms(net), net[1].training
    (['1'], False)
    """
    names = []
    for name, m in model.named_modules():
        own = list(m.parameters(recurse=False))
        if getattr(m, "track_running_stats", False) and own and not any(p.requires_grad for p in own):
            m.eval()
            names.append(name)
    return names


def _single_size(input_size: Any) -> tuple[int, ...] | None:
    """The one input shape of ``input_size`` (``(2, 3, 8, 8)`` or ``[(2, 3, 8, 8)]``), else None."""
    if input_size is None:
        return None
    if isinstance(input_size, Sequence) and input_size and all(isinstance(d, int) for d in input_size):
        return tuple(input_size)
    if isinstance(input_size, Sequence) and len(input_size) == 1:
        return _single_size(input_size[0])
    return None


def _all_sizes(input_size: Any, input_data: Any) -> tuple[tuple[int, ...], ...]:
    one = _single_size(input_size)
    if one is not None:
        return (one,)
    if isinstance(input_size, Sequence):
        return tuple(tuple(s) for s in input_size)
    if isinstance(input_data, torch.Tensor):
        return (tuple(input_data.shape),)
    if isinstance(input_data, tuple | list):
        return tuple(tuple(t.shape) for t in input_data if isinstance(t, torch.Tensor))
    return ()


REPORT_PARTS = 6
"""Tree, summary, activations, grads, freeze check and memory: the parts ``progress`` counts."""


def collect_report(
    model: nn.Module,
    input_size: Any = None,
    input_data: Any = None,
    *,
    title: str | None = None,
    modules: str | Sequence[str] | None = None,
    check: bool = True,
    train_bn: bool = True,
    frozen: str | Sequence[str] | None = None,
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    dtype: torch.dtype | str | None = None,
    seed: int = 0,
    memory: bool = True,
    progress: ProgressFn | None = None,
) -> ReportData:
    """Tree, summary, activations, grads and a freeze check of ``model``, as one plain-data report.

    Runs the collectors of torchscope on synthetic inputs (``input_size``) or on ``input_data``:
    :func:`~torchscope.tree`, :func:`~torchscope.summary`, :func:`~torchscope.record` (activation
    stats of ``modules``, default all), :func:`~torchscope.grad_report` (one forward and backward)
    and :func:`~torchscope.check_freeze` (a reference SGD step on a copy of the model;
    ``train_bn=False`` keeps frozen norm layers in eval), and with ``memory`` the predicted peak
    memory of two training steps of that optimizer on CUDA (:func:`~torchscope.estimate_memory`). Synthetic inputs are drawn from ``seed``,
    so the same model gives the same report; the caller's RNG state is left as found, and so is
    the model. ``progress("report", done, 6)``, when given, is called as each of the six parts is
    done (nothing is shown otherwise).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> data = collect_report(net, input_size=(2, 4))
    >>> data.total_params, data.check_ok, [g.name for g in data.grads]
    (67, True, ['0', '2'])
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _collect(
            model, input_size, input_data, title=title, modules=modules, check=check, train_bn=train_bn,
            frozen=frozen, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, dtype=dtype,
            memory=memory, progress=progress,
        )  # fmt: skip


def _shapes(row: Any) -> tuple[str, str]:
    # a layer inside TorchScript ran without hooks: its shapes are unknown, not "no tensors"
    if row.opaque:
        return "?", "?"
    from torchscope._summary import shapes_text

    return shapes_text(row.inputs), shapes_text(row.outputs)


def _collect(
    model: nn.Module,
    input_size: Any,
    input_data: Any,
    *,
    title: str | None,
    modules: str | Sequence[str] | None,
    check: bool,
    train_bn: bool,
    frozen: str | Sequence[str] | None,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    dtype: torch.dtype | str | None,
    memory: bool = True,
    progress: ProgressFn | None = None,
) -> ReportData:
    from torchscope._check import check_freeze
    from torchscope._compiled import uncompiled
    from torchscope._grads import grad_report
    from torchscope._inputs import prepare_call
    from torchscope._record import record
    from torchscope._state import preserved
    from torchscope._summary import collect_summary
    from torchscope._tree import tree

    model = uncompiled(model)  # the eager modules: Dynamo traces none of our passes
    if input_size is None and input_data is None:
        raise SpecError("collect_report needs input_size (e.g. (1, 3, 224, 224)) or input_data")
    if any(p.is_meta for p in model.parameters()):
        raise SpecError("the model is on the meta device (no values); load it on 'cpu' for a report")
    notes: list[str] = []
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        # forward passes would materialise the lazy parameters of the caller's model
        model = copy.deepcopy(model)
        notes.append("lazy modules were initialised on a copy of the model")

    def done(part: int) -> None:
        tell(progress, "report", part, REPORT_PARTS)

    done(0)
    t = tree(model).to_dict()
    tree_rows = tuple(
        TreeRow(m["name"], m["type"], m["depth"], m["params"], m["freeze"], m["training"]) for m in t["modules"]
    )
    blocks = tuple(
        BlockRow(m["name"], m["type"], m["params"], m["trainable_params"]) for m in t["modules"] if m["depth"] == 1
    )
    warnings = tuple(w["message"] for w in t["warnings"])
    done(1)

    s = collect_summary(model, input_size, input_data, dtype=dtype, compare_modes=False)
    layers = tuple(
        LayerRow(r.name or "(model)", r.type, *_shapes(r), r.params, r.mult_adds) for r in s.rows
    )
    notes.extend(s.notes)
    done(2)

    # Activation stats of one eval-mode forward pass, the way `torchscope activations` takes them.
    with_children = {name for name, m in model.named_modules() if next(m.children(), None) is not None}
    with preserved(model):
        model.eval()
        args, kw = prepare_call(model, input_size, input_data, dtype=dtype)
        with torch.no_grad(), record(model, modules) as rec:
            model(*args, **kw)
        acts = rec.report()
    activation_rows = []
    for c in acts.calls:
        if c.stats is None:
            continue
        label = c.module + (f"#{c.call + 1}" if c.call else "") + ("" if c.output == "output" else f" {c.output}")
        activation_rows.append(
            ActivationRow(
                label, c.type, format_shape(c.shape), c.stats.mean, c.stats.std, c.stats.zero_fraction,
                tuple(c.flags), leaf=c.module not in with_children,
            )
        )

    done(3)
    grad_rows: tuple[GradRow, ...] = ()
    unused: tuple[str, ...] = ()
    if any(p.requires_grad for p in model.parameters()):
        g = grad_report(model, input_size=input_size, input_data=input_data, dtype=dtype)
        grad_rows = tuple(
            GradRow(la.name or "(model)", la.type, la.grad_norm, la.trainable == 0, (la.flag,) if la.flag else ())
            for la in g.layers
        )
        unused = tuple(g.unused)
    else:
        notes.append("grads skipped: the model has no trainable parameters")

    check_ok: bool | None = None
    checks: tuple[str, ...] = ()
    violations: tuple[ViolationRow, ...] = ()
    not_checked: tuple[tuple[str, str], ...] = ()
    check_summary = ""
    done(4)
    size = _single_size(input_size) or (tuple(input_data.shape) if isinstance(input_data, torch.Tensor) else None)
    # the check feeds random inputs of that shape and dtype (0/1 ids for an integer dtype)
    check_dtype = input_data.dtype if isinstance(input_data, torch.Tensor) else dtype
    if not check:
        notes.append("freeze check skipped (check=False)")
    elif size is None:
        notes.append("freeze check skipped: it needs a single input shape")
    else:
        rep = check_freeze(
            model, input_size=size, optimizer=optimizer, lr=lr, momentum=momentum,
            weight_decay=weight_decay, train_bn=train_bn, frozen=frozen, dtype=check_dtype,
        )
        d = rep.to_dict()
        check_ok = bool(d["ok"])
        violations = tuple(
            ViolationRow(v["kind"], v["name"], v.get("max_abs_change"), v.get("cause", "")) for v in d["violations"]
        )
        checks = tuple(k for k in d["checks"] if d["status"][k] == "held")
        not_checked = tuple(d["not_checked"].items())
        bn = "frozen norm layers in train mode" if train_bn else "frozen norm layers in eval mode"
        check_summary = (
            f"one {optimizer} step (lr={lr}, momentum={momentum}, weight_decay={weight_decay}, {bn}) on a copy: "
            f"{d['frozen_params']} frozen and {d['trainable_params']} trainable of {d['params']} params, "
            f"{d['frozen_buffers']} frozen of {d['buffers']} buffers checked"
        )

    done(5)
    memory_report = _memory(model, input_size, input_data, optimizer, momentum, notes, dtype) if memory else None
    done(REPORT_PARTS)

    import torchscope

    return ReportData(
        title=title or t["model_type"],
        model_type=t["model_type"],
        total_params=t["total_params"],
        trainable_params=t["trainable_params"],
        frozen_params=t["frozen_params"],
        input_size=_all_sizes(input_size, input_data),
        generated_by=f"torchscope {torchscope.__version__}, torch {torch.__version__}",
        mult_adds=s.total_mult_adds,
        mult_adds_lower_bound=s.mult_adds_lower_bound,
        modules_in_train_mode=t["modules_in_train_mode"],
        modules_in_eval_mode=t["modules_in_eval_mode"],
        blocks=blocks,
        modules=tree_rows,
        layers=layers,
        activations=tuple(activation_rows),
        grads=grad_rows,
        unused=unused,
        check_ok=check_ok,
        checks=checks,
        violations=violations,
        check_summary=check_summary,
        not_checked=not_checked,
        warnings=warnings,
        notes=tuple(dict.fromkeys(notes)),
        memory=memory_report,
    )


def _memory(
    model: nn.Module, input_size: Any, input_data: Any, optimizer: str, momentum: float, notes: list[str],
    dtype: torch.dtype | str | None = None,
) -> MemoryReport | None:
    """The memory section: the reference step's optimizer, predicted for CUDA; a note if it cannot."""
    from torchscope._inputs import parse_dtype
    from torchscope._memory.estimate import estimate_memory

    inputs = input_data
    integer = parse_dtype(dtype)
    if inputs is None and integer is not None and not (integer.is_floating_point or integer.is_complex):
        # token ids: shapes alone would be float inputs; meta tensors carry the dtype, allocating nothing
        metas = [torch.empty(s, dtype=integer, device="meta") for s in _all_sizes(input_size, None)]
        inputs = metas[0] if len(metas) == 1 else metas
    if inputs is None:
        inputs = _single_size(input_size) or list(_all_sizes(input_size, None))
    name = {"sgd": "sgd-momentum" if momentum else "sgd"}.get(optimizer, optimizer)
    try:
        return estimate_memory(model, inputs, optimizer=name)
    except TorchscopeError as exc:
        notes.append(f"memory skipped: {exc}")
        return None
