"""``collect_report``: tree, summary, activations, grads and a freeze check, as one plain-data report.

The HTML page (:mod:`torchscope.render.html`) and ``torchscope report --json`` both read the
:class:`ReportData` this returns; nothing re-runs the model to produce another format.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from torchscope._checkparts.report import StepCheck
from torchscope._grads import GradReport
from torchscope._memory.schema import MemoryReport
from torchscope._progress import ProgressFn, tell
from torchscope._record import ActivationReport
from torchscope._result import Result
from torchscope._summary.data import Summary
from torchscope._treedata import ModuleTree
from torchscope.errors import SpecError, TorchscopeError


@dataclass(frozen=True, repr=False)
class ReportData(Result):
    """Everything ``torchscope report`` shows: the results of the collectors it ran, composed.

    Each part is the result its own function returns (``tree``, ``summary``, ``record``,
    ``grad_report``, ``check_freeze``, ``estimate_memory``), so the page shows the same sections as
    each result's own display, and ``to_dict()`` (the ``--json``) holds each part's own schema.
    A part that was skipped is None, and ``notes`` says why.
    """

    title: str
    tree: ModuleTree
    summary: Summary | None = None
    activations: ActivationReport | None = None
    grads: GradReport | None = None
    check: StepCheck | None = None
    memory: MemoryReport | None = None  # the predicted peak of two training steps (estimate_memory)
    input_size: tuple[tuple[int, ...], ...] = ()
    generated_by: str = "torchscope"
    check_step: str = ""  # the reference step of the check, in words
    notes: tuple[str, ...] = field(default=())

    SCHEMA = "torchscope.report/2"
    DERIVED = (
        "model_type", "total_params", "trainable_params", "frozen_params", "mult_adds", "mult_adds_lower_bound",
        "check_ok",
    )  # fmt: skip

    @property
    def model_type(self) -> str:
        return self.tree.model_type

    @property
    def total_params(self) -> int:
        return self.tree.total_params

    @property
    def trainable_params(self) -> int:
        return self.tree.trainable_params

    @property
    def frozen_params(self) -> int:
        return self.tree.frozen_params

    @property
    def mult_adds(self) -> int | None:
        """Mult-adds of one forward pass (a lower bound where ``summary.mult_adds_lower_bound``)."""
        return None if self.summary is None else self.summary.total_mult_adds

    @property
    def mult_adds_lower_bound(self) -> bool:
        """An op with arithmetic had no FLOP formula: :attr:`mult_adds` is a lower bound (see ``notes``)."""
        return self.summary is not None and self.summary.mult_adds_lower_bound

    @property
    def check_ok(self) -> bool | None:
        """The freeze check's verdict; None when it did not run."""
        return None if self.check is None else self.check.ok


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

    Args:
        model: The model to report on. Not modified.
        input_size: The synthetic input's shape (batch first), or one per positional input.
        input_data: Real inputs instead of ``input_size``.
        title: The report's title; default the model's class name.
        modules: Glob patterns of the modules whose activations are recorded; default all.
        check: Run the freeze check.
        train_bn: ``False`` keeps frozen norm layers in eval mode in the check's step.
        frozen: Glob patterns of what must stay unchanged; default: what is frozen now.
        optimizer: The check's optimizer, ``"sgd"`` or ``"adamw"``.
        lr: The check's learning rate.
        momentum: The check's SGD momentum.
        weight_decay: The check's weight decay.
        dtype: The synthetic inputs' dtype.
        seed: Seed of the synthetic inputs.
        memory: Add the predicted peak memory of two training steps.
        progress: Called as ``progress("report", done, 6)`` as each part is done.

    Returns:
        The ``ReportData``: tree, summary, activations, grads, check and memory, as plain data.

    Raises:
        TorchscopeError: Bad inputs or options, or a forward pass failed (``ForwardError``).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> data = collect_report(net, input_size=(2, 4))
    >>> data.total_params, data.check_ok, [g.name for g in data.grads.layers]
    (67, True, ['0', '2'])
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _collect(
            model, input_size, input_data, title=title, modules=modules, check=check, train_bn=train_bn,
            frozen=frozen, optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, dtype=dtype,
            memory=memory, progress=progress,
        )  # fmt: skip


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
    t = tree(model)
    done(1)
    s = collect_summary(model, input_size, input_data, dtype=dtype, compare_modes=False)
    notes.extend(s.notes)
    done(2)

    # Activation stats of one eval-mode forward pass, the way `torchscope activations` takes them.
    with preserved(model):
        model.eval()
        args, kw = prepare_call(model, input_size, input_data, dtype=dtype)
        with torch.no_grad(), record(model, modules) as rec:
            model(*args, **kw)
        acts = rec.report()
    if acts.status == "not checked":  # an empty section is not an all-clear: say why it is empty
        notes.append(f"activations not checked: {acts.why_unchecked()}")

    done(3)
    grads = None
    if any(p.requires_grad for p in model.parameters()):
        grads = grad_report(model, input_size=input_size, input_data=input_data, dtype=dtype)
    else:
        notes.append("grads skipped: the model has no trainable parameters")

    rep = None
    step = ""
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
        bn = "frozen norm layers in train mode" if train_bn else "frozen norm layers in eval mode"
        step = f"one {optimizer} step (lr={lr}, momentum={momentum}, weight_decay={weight_decay}, {bn}) on a copy"

    done(5)
    memory_report = _memory(model, input_size, input_data, optimizer, momentum, notes, dtype) if memory else None
    done(REPORT_PARTS)

    import torchscope

    return ReportData(
        title=title or t.model_type,
        tree=t,
        summary=s,
        activations=acts,
        grads=grads,
        check=rep,
        memory=memory_report,
        input_size=_all_sizes(input_size, input_data),
        generated_by=f"torchscope {torchscope.__version__}, torch {torch.__version__}",
        check_step=step,
        notes=tuple(dict.fromkeys(notes)),
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
