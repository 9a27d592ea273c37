"""``watch``: log what happens inside training to TensorBoard, every N optimizer steps.

Every ``every`` optimizer steps it logs, for the watched model:

- histograms of every trainable parameter (``param/NAME``) and of its grad (``grad/NAME``);
- per-layer grad norms (``grad_norm/LAYER``, plus ``grad_norm/total``) and update/param norm
  ratios (``update_ratio/LAYER``: ||p_after - p_before|| / ||p_before||; about 1e-3 is healthy);
- activation stats of chosen modules (``activation/MODULE/mean|std|zero_frac|abs_max``), averaged
  over the forward calls since the previous optimizer step.

A "layer" is the module that owns a parameter directly (``layer1.0.conv1`` for
``layer1.0.conv1.weight``). Everything is reduced on the tensors' own device and brought to the host
with one transfer per logged step; steps in between cost one Python call per hooked module and
nothing on the device. :meth:`Watch.close` (or leaving the ``with`` block) removes every hook.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from torchscope._patterns import match_names
from torchscope.errors import TorchscopeError

HIST_BINS = 30
# The per-call activation stats, in the order they are stacked on the device.
ACTIVATION_STATS: tuple[str, ...] = ("mean", "std", "zero_frac", "abs_max")
_HIST_HEAD = 6  # min, max, num, sum, sum_squares, nonfinite count


def _layer_of(param_name: str) -> str:
    return param_name.rpartition(".")[0] or "root"


def _hist_stats(t: torch.Tensor, bins: int) -> torch.Tensor:
    """[min, max, num, sum, sum_sq, nonfinite, counts...] of the finite values, all on t's device.

    No data-dependent shapes (no boolean indexing, no bincount), so nothing forces a host sync.
    """
    x = t.detach().reshape(-1).float()
    fin = torch.isfinite(x)
    xf = torch.where(fin, x, torch.zeros((), device=x.device))
    mn = torch.where(fin, x, torch.full((), math.inf, device=x.device)).amin()
    mx = torch.where(fin, x, torch.full((), -math.inf, device=x.device)).amax()
    span = (mx - mn).clamp_min(1e-12)
    idx = ((x - mn) / span * bins).floor().clamp(0, bins - 1)
    idx = torch.where(fin, idx, torch.zeros((), device=x.device)).long()
    counts = torch.zeros(bins, device=x.device).scatter_add_(0, idx, fin.float())
    head = torch.stack(
        [mn, mx, fin.sum().float(), xf.sum(), (xf * xf).sum(), (~fin).sum().float()]
    )
    return torch.cat([head, counts])


def _activation_stats(t: torch.Tensor) -> torch.Tensor:
    x = t.detach().reshape(-1).float()
    return torch.stack(
        [x.mean(), x.std(correction=0), (x == 0).float().mean(), x.abs().amax()]
    )


def _first_float_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out if out.is_floating_point() and out.numel() > 0 else None
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        for item in out:
            found = _first_float_tensor(item)
            if found is not None:
                return found
    return None


def _group_norms(norms: list[torch.Tensor], groups: list[list[int]], device: torch.device) -> torch.Tensor:
    """sqrt(sum of squares) of ``norms`` within each group: per-layer norms from per-param norms."""
    if not groups:
        return torch.zeros(0, device=device)
    stacked = torch.stack(norms).float()
    return torch.stack([stacked[g].pow(2).sum().sqrt() for g in groups])


@dataclass
class _Pending:
    """What the pre-step hook computed for the step being logged, waiting for the post-step hook."""

    step: int
    params: list[tuple[str, nn.Parameter]]
    before: list[torch.Tensor]
    device_stats: list[torch.Tensor]
    layout: list[tuple[str, str, int]]


class Watch:
    """A running watch; returned by :func:`watch`. Close it (or use ``with``) to remove its hooks."""

    def __init__(
        self,
        model: nn.Module,
        writer: Any,
        *,
        every: int = 100,
        modules: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        histograms: bool = True,
        update_ratios: bool = True,
        bins: int = HIST_BINS,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise TorchscopeError(f"every={every!r} must be an integer >= 1 (log every N optimizer steps)")
        if bins < 1:
            raise TorchscopeError(f"bins={bins} must be >= 1")
        for method in ("add_scalar", "add_histogram_raw"):
            if not callable(getattr(writer, method, None)):
                raise TorchscopeError(
                    f"writer {type(writer).__name__} has no {method}(); pass a "
                    "torch.utils.tensorboard.SummaryWriter (pip install 'torchscope[tensorboard]')"
                )
        self.model = model
        self.writer = writer
        self.every = every
        self.histograms = histograms
        self.update_ratios = update_ratios
        self.bins = bins
        self.step = 0
        """Optimizer steps seen so far."""
        self.logged_steps: list[int] = []
        """The step indices that were written."""
        self._param_ids = {id(p) for p in model.parameters()}
        self._optimizer_matches: weakref.WeakKeyDictionary[torch.optim.Optimizer, bool] = (
            weakref.WeakKeyDictionary()
        )
        self._handles: list[RemovableHandle] = []
        self._armed = True  # step 0 is logged, so the forward before it records
        self._act_sum: dict[str, torch.Tensor] = {}
        self._act_calls: dict[str, int] = {}
        self._pending: _Pending | None = None
        self._closed = False

        names = self._select_modules(modules)
        named = dict(model.named_modules())
        try:
            for name in names:
                self._handles.append(named[name].register_forward_hook(self._make_forward_hook(name)))
            if optimizer is not None:
                self._optimizer_matches[optimizer] = True
                self._handles.append(optimizer.register_step_pre_hook(self._pre_step))
                self._handles.append(optimizer.register_step_post_hook(self._post_step))
            else:
                # Global hooks see every optimizer; _pre_step keeps those that hold this model's params.
                from torch.optim.optimizer import (
                    register_optimizer_step_post_hook,
                    register_optimizer_step_pre_hook,
                )

                self._handles.append(register_optimizer_step_pre_hook(self._pre_step))
                self._handles.append(register_optimizer_step_post_hook(self._post_step))
        except BaseException:
            self.close()
            raise

    # -- selection ------------------------------------------------------------------------------
    def _select_modules(self, modules: str | Sequence[str] | None) -> list[str]:
        named = [n for n, _ in self.model.named_modules() if n]
        if modules is None:
            # The layers: modules that own parameters, the same ones grad norms are grouped by.
            return [n for n, m in self.model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
        patterns = [modules] if isinstance(modules, str) else list(modules)
        return match_names(named, patterns, what="module") if patterns else []

    def _watches(self, optimizer: torch.optim.Optimizer) -> bool:
        hit = self._optimizer_matches.get(optimizer)
        if hit is None:
            hit = any(id(p) in self._param_ids for g in optimizer.param_groups for p in g["params"])
            self._optimizer_matches[optimizer] = hit
        return hit

    # -- hooks ----------------------------------------------------------------------------------
    def _make_forward_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not self._armed:
                return
            t = _first_float_tensor(output)
            if t is None:
                return
            with torch.no_grad():
                stats = _activation_stats(t)
                prev = self._act_sum.get(name)
                self._act_sum[name] = stats if prev is None else prev + stats.to(prev.device)
            self._act_calls[name] = self._act_calls.get(name, 0) + 1

        return hook

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._watches(optimizer) or self.step % self.every != 0:
            return
        with torch.no_grad():
            self._pending = self._collect_before(self.step)

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._watches(optimizer):
            return
        pending, self._pending = self._pending, None
        if pending is not None and pending.step == self.step:
            with torch.no_grad():
                self._write(pending)
        self.step += 1
        self._armed = self.step % self.every == 0

    # -- collection -----------------------------------------------------------------------------
    def _collect_before(self, step: int) -> _Pending:
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad and p.numel() > 0]
        with_grad = [(n, p) for n, p in params if p.grad is not None]
        stats: list[torch.Tensor] = []
        layout: list[tuple[str, str, int]] = []
        device = params[0][1].device if params else torch.device("cpu")

        if with_grad:
            norms = torch._foreach_norm([p.grad for _, p in with_grad])  # type: ignore[misc]
            layers, groups = _groups([n for n, _ in with_grad])
            per_layer = _group_norms(list(norms), groups, device)
            stats.append(per_layer.to(device))
            layout += [("grad_norm", layer, 1) for layer in layers]
            stats.append(per_layer.pow(2).sum().sqrt().reshape(1).to(device))
            layout.append(("grad_norm", "total", 1))
            if self.histograms:
                for n, p in with_grad:
                    stats.append(_hist_stats(p.grad, self.bins).to(device))  # type: ignore[arg-type]
                    layout.append(("grad_hist", n, _HIST_HEAD + self.bins))
        # The update needs the params before the step: one copy of the trainable params, on
        # logged steps only.
        before = [p.detach().clone() for _, p in params] if self.update_ratios else []
        return _Pending(step, params, before, stats, layout)

    def _write(self, pending: _Pending) -> None:
        stats, layout = list(pending.device_stats), list(pending.layout)
        params = pending.params
        device = params[0][1].device if params else torch.device("cpu")
        if params and pending.before:
            after = [p.detach() for _, p in params]
            updates = torch._foreach_sub(after, pending.before)
            upd_norms = torch._foreach_norm(updates)
            before_norms = torch._foreach_norm(pending.before)
            layers, groups = _groups([n for n, _ in params])
            upd = _group_norms(list(upd_norms), groups, device)
            ref = _group_norms(list(before_norms), groups, device)
            stats.append((upd / ref.clamp_min(1e-30)).to(device))
            layout += [("update_ratio", layer, 1) for layer in layers]
        if self.histograms:
            for n, p in params:
                stats.append(_hist_stats(p, self.bins).to(device))
                layout.append(("param_hist", n, _HIST_HEAD + self.bins))
        for name, total in self._act_sum.items():
            stats.append((total / self._act_calls[name]).to(device))
            layout.append(("activation", name, len(ACTIVATION_STATS)))
        self._act_sum.clear()
        self._act_calls.clear()
        if not stats:
            return
        # The one host transfer of this step.
        values: list[float] = torch.cat([s.reshape(-1).float() for s in stats]).tolist()
        self._emit(pending.step, values, layout)
        self.logged_steps.append(pending.step)

    def _emit(self, step: int, values: list[float], layout: list[tuple[str, str, int]]) -> None:
        w = self.writer
        pos = 0
        for kind, name, size in layout:
            chunk = values[pos : pos + size]
            pos += size
            if kind in ("grad_norm", "update_ratio"):
                w.add_scalar(f"{kind}/{name}", chunk[0], global_step=step)
            elif kind == "activation":
                for stat, v in zip(ACTIVATION_STATS, chunk, strict=True):
                    w.add_scalar(f"activation/{name}/{stat}", v, global_step=step)
            else:
                self._emit_histogram("grad" if kind == "grad_hist" else "param", name, chunk, step)

    def _emit_histogram(self, prefix: str, name: str, chunk: list[float], step: int) -> None:
        mn, mx, num, total, sum_sq, _nonfinite = chunk[:_HIST_HEAD]
        counts = chunk[_HIST_HEAD:]
        if num <= 0:  # nothing finite to show; the grad norm scalar already reads nan/inf
            return
        width = (mx - mn) / self.bins if mx > mn else 0.0
        limits = [mn + width * (i + 1) for i in range(self.bins)] if width > 0 else [mx] * self.bins
        if width == 0:
            # all values equal: one bucket holds them all
            limits, counts = [mx], [num]
        self.writer.add_histogram_raw(
            f"{prefix}/{name}",
            min=mn,
            max=mx,
            num=int(num),
            sum=total,
            sum_squares=sum_sq,
            bucket_limits=limits,
            bucket_counts=counts,
            global_step=step,
        )

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        """Remove every hook this watch added; the writer stays open (it is the caller's)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pending = None
        self._act_sum.clear()
        self._act_calls.clear()
        if not self._closed:
            self._closed = True
            flush = getattr(self.writer, "flush", None)
            if callable(flush):
                flush()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._handles)} hooks"
        return f"Watch(every={self.every}, step={self.step}, {state})"


def _groups(param_names: Iterable[str]) -> tuple[list[str], list[list[int]]]:
    """Layer names in first-seen order, and for each the indices of its params."""
    index: dict[str, list[int]] = {}
    for i, n in enumerate(param_names):
        index.setdefault(_layer_of(n), []).append(i)
    return list(index), list(index.values())


def watch(
    model: nn.Module,
    writer: Any,
    *,
    every: int = 100,
    modules: str | Sequence[str] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    histograms: bool = True,
    update_ratios: bool = True,
) -> Watch:
    """Log param/grad histograms, per-layer grad norms, update ratios and activation stats.

    Every ``every`` optimizer steps (counted on any optimizer that holds a parameter of ``model``,
    or only on ``optimizer`` when given), it writes to ``writer``, a
    ``torch.utils.tensorboard.SummaryWriter``. ``modules`` picks the modules whose activation
    stats are logged (glob patterns, see :func:`torchscope.freeze`); by default every module that
    owns parameters, ``[]`` for none. One host transfer per logged step. Update ratios need the
    params from before the step: on logged steps only, the watch keeps one copy of the trainable
    params; ``update_ratios=False`` skips it (and the ratios), ``histograms=False`` the histograms.

    Args:
        model: The model the loop trains.
        writer: A ``torch.utils.tensorboard.SummaryWriter``.
        every: Log every N optimizer steps.
        modules: Glob patterns of the modules whose activation stats are logged; ``[]`` for none.
        optimizer: Count only this optimizer's steps.
        histograms: Log param and grad histograms.
        update_ratios: Log update ratios (keeps a copy of the trainable params on logged steps).

    Returns:
        The ``Watch``, a context manager (``with watch(...) as w:``).

    Raises:
        TorchscopeError: ``every`` < 1, or a pattern that matches nothing.

    >>> import torch, tempfile
    >>> from torch.utils.tensorboard import SummaryWriter
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> with SummaryWriter(tempfile.mkdtemp()) as writer, watch(model, writer, every=2) as w:
    ...     for _ in range(3):
    ...         model(torch.randn(8, 4)).sum().backward()
    ...         opt.step()
    ...         opt.zero_grad()
    >>> w.logged_steps
    [0, 2]
    """
    return Watch(
        model, writer, every=every, modules=modules, optimizer=optimizer, histograms=histograms,
        update_ratios=update_ratios,
    )  # fmt: skip
