"""The model's params and buffers by qualified name: take a snapshot once, compare against it as often
as you like.

A check that compares before and after reads the model by name both times (habit 3): after the
step, ``backbone.0.weight`` is whatever tensor the model holds under that name *now*. So a tensor
that was replaced (a new ``nn.Parameter`` assigned to it, its module swapped for a new one, a buffer
re-bound to a new tensor, ``p.data`` set to a tensor of another shape as ``resize_token_embeddings``
does) is seen as surely as one edited in place, and so are a name that vanished, a new name where
everything was frozen, and a ``requires_grad`` flag that changed.

:func:`take_snapshot` records, for every name of the model: which object it is (a weak reference,
so the snapshot keeps nothing alive), its shape, dtype and ``requires_grad``, and which module holds
it; for the names under check, one 64-bit fingerprint per tensor (``torchscope._fingerprint``), plus,
in ``exact`` mode, a copy of the frozen ones. :meth:`NamedSnapshot.compare` reads the model again by
name and returns a :class:`SnapshotDiff` (plain data), bringing every number to the host in one
transfer per device. The snapshot is not consumed: a guard takes it at the start of a run and
compares every step against it (fingerprint mode: O(1) memory per tensor).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from torchscope._checkparts.numerics import Floats, bit_equal, max_abs_diff, wide_float
from torchscope._checkparts.plan import local_tensor, module_type
from torchscope._fingerprint import SliceReader, fingerprint_tensor, host_fingerprint, slice_reader
from torchscope._format import format_shape
from torchscope.errors import TorchscopeError

__all__ = ["Mode", "NameChange", "NamedSnapshot", "SnapshotDiff", "named_state", "take_snapshot"]

Mode = Literal["exact", "fingerprint"]
T = TypeVar("T")

#: What a name is to the check: ``frozen`` (must not change), ``trainable`` (must change), or
#: ``other`` (only its identity and flags are recorded).
ROLES = ("frozen", "trainable", "other")


@dataclass(frozen=True)
class Held:
    """One name of the model now: the tensor, whether it is a param, and the module that holds it."""

    tensor: torch.Tensor
    is_param: bool
    module_name: str
    module: nn.Module


def named_state(model: nn.Module) -> tuple[dict[str, Held], dict[str, nn.Module]]:
    """Every param and buffer name of ``model`` (aliases of tied tensors and shared modules too),
    and every module name, as the model holds them now."""
    tensors: dict[str, Held] = {}
    modules: dict[str, nn.Module] = {}
    for mname, module in model.named_modules(remove_duplicate=False):
        modules[mname] = module
        for is_param, slots in ((True, module._parameters), (False, module._buffers)):
            for short, t in slots.items():
                if t is not None:
                    tensors.setdefault(f"{mname}.{short}" if mname else short, Held(t, is_param, mname, module))
    return tensors, modules


@dataclass
class _Entry:
    """One name at snapshot time (live: a weak reference to the tensor it was)."""

    name: str
    is_param: bool
    module_name: str
    ref: Callable[[], torch.Tensor | None]
    shape: tuple[int, ...]
    dtype: torch.dtype
    requires_grad: bool
    role: str
    slot: int | None  # index of the unique watched tensor (fingerprint, copy); None: not watched


def _ref(obj: T) -> Callable[[], T | None]:
    """A weak reference: the snapshot keeps nothing alive (a dead one means the object was replaced)."""
    try:
        return weakref.ref(obj)
    except TypeError:  # a subclass without weakref support: hold it (identity stays exact)
        return lambda: obj


def _no_values(t: torch.Tensor) -> bool:
    return t.is_meta or nn.parameter.is_lazy(t)


@dataclass(frozen=True)
class NameChange:
    """What happened to one name (and its ``aliases``, names of the same tensor that went the same way).

    ``status``: ``same`` (the same object, same shape and dtype), ``replaced`` (another object, or the
    same object holding data of another shape or dtype: ``same_object``), ``removed`` (the name is
    gone) or ``added`` (a name the snapshot did not have). ``changed`` is whether the values differ
    (None where they were not compared: not watched, shapes differ, or nothing left to compare);
    ``max_abs_change`` is the largest difference where a copy was kept (exact mode, frozen names).
    ``replaced_module`` is the outermost module on the name's path that is a new object, if any.
    """

    name: str
    role: str
    status: str
    is_param: bool
    module_name: str
    changed: bool | None = None
    max_abs_change: float | None = None
    same_object: bool = False
    shape_before: tuple[int, ...] | None = None
    shape_after: tuple[int, ...] | None = None
    dtype_before: str | None = None
    dtype_after: str | None = None
    requires_grad_before: bool | None = None
    requires_grad_after: bool | None = None
    module_type_before: str | None = None
    module_type_after: str | None = None
    replaced_module: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def moved(self) -> bool:
        """Edited in place: the same tensor with changed values."""
        return self.status == "same" and bool(self.changed)

    @property
    def flag_changed(self) -> bool:
        """The same param with a ``requires_grad`` that changed."""
        return (
            self.status == "same"
            and self.requires_grad_before is not None
            and self.requires_grad_before != self.requires_grad_after
        )

    @property
    def shape_text(self) -> str:
        """``[8, 4]``, or ``[128, 32] -> [130, 32]`` where the shape changed."""
        before = None if self.shape_before is None else format_shape(self.shape_before)
        after = None if self.shape_after is None else format_shape(self.shape_after)
        if before is None or after is None or before == after:
            return before or after or "-"
        return f"{before} -> {after}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "role": self.role,
            "status": self.status,
            "is_param": self.is_param,
            "module": self.module_name,
            "changed": self.changed,
            "max_abs_change": self.max_abs_change,
            "same_object": self.same_object,
            "shape_before": None if self.shape_before is None else list(self.shape_before),
            "shape_after": None if self.shape_after is None else list(self.shape_after),
            "dtype_before": self.dtype_before,
            "dtype_after": self.dtype_after,
            "requires_grad_before": self.requires_grad_before,
            "requires_grad_after": self.requires_grad_after,
            "module_type_before": self.module_type_before,
            "module_type_after": self.module_type_after,
            "replaced_module": self.replaced_module,
        }


@dataclass(frozen=True)
class SnapshotDiff:
    """Every watched name (frozen and trainable, whatever happened to it), every other name that was
    replaced or removed, and every added name, in model order. Plain data."""

    mode: str
    changes: tuple[NameChange, ...]

    @cached_property
    def _index(self) -> dict[str, NameChange]:
        out: dict[str, NameChange] = {}
        for c in self.changes:
            for n in (c.name, *c.aliases):
                out.setdefault(n, c)
        return out

    def get(self, name: str) -> NameChange | None:
        """The change of ``name`` (or of a tensor it is an alias of)."""
        return self._index.get(name)

    def by_status(self, status: str) -> tuple[NameChange, ...]:
        return tuple(c for c in self.changes if c.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "changes": [c.to_dict() for c in self.changes]}


def _dtype(d: torch.dtype) -> str:
    return str(d).removeprefix("torch.")


class NamedSnapshot:
    """The state of a model by qualified name at one moment; see :func:`take_snapshot`.

    It holds weak references (identity), shapes, dtypes, flags, one fingerprint per watched tensor
    and, in exact mode, a copy of each frozen one (``nbytes`` in all). Compare as often as you like.
    """

    def __init__(
        self,
        mode: Mode,
        entries: dict[str, _Entry],
        modules: dict[str, tuple[Callable[[], nn.Module | None], str]],
        fingerprints: list[torch.Tensor],
        copies: list[torch.Tensor | None],
        skipped: tuple[str, ...],
    ) -> None:
        self.mode = mode
        self.entries = entries
        self.modules = modules
        self.fingerprints = fingerprints
        self.copies = copies
        self.skipped = skipped
        self._decides = self._owners()
        self._host_fps: dict[int, int] = {}  # slot -> its CPU fingerprint as an int, read once
        # slot -> a reader of its memory in place: a small tensor (a BatchNorm buffer) then costs
        # one C call per check instead of host_fingerprint's checks and views
        self._readers: dict[int, SliceReader | None] = {}

    @property
    def nbytes(self) -> int:
        """Bytes the snapshot keeps: the copies, and 8 per fingerprint."""
        return sum(c.nbytes for c in self.copies if c is not None) + 8 * len(self.fingerprints)

    def copy_of(self, name: str) -> torch.Tensor | None:
        """The copy kept of ``name``'s values (exact mode, frozen names), else None."""
        e = self.entries.get(name)
        return None if e is None or e.slot is None else self.copies[e.slot]

    def names(self, role: str | None = None) -> list[str]:
        """The names recorded (of one role, if given), in model order."""
        return [n for n, e in self.entries.items() if role is None or e.role == role]

    def _owners(self) -> dict[str, bool]:
        """Module name -> whether every name under it was frozen (modules that held any name)."""
        out: dict[str, bool] = {}
        for name, e in self.entries.items():
            parts = name.split(".")[:-1]
            for i in range(len(parts) + 1):
                prefix = ".".join(parts[:i])
                out[prefix] = out.get(prefix, True) and e.role == "frozen"
        return out

    def in_frozen_scope(self, name: str) -> bool:
        """Whether a name the snapshot did not have lies where everything was frozen: its nearest
        ancestor module that held any name held only frozen ones."""
        parts = name.split(".")[:-1]
        for i in range(len(parts), -1, -1):
            decided = self._decides.get(".".join(parts[:i]))
            if decided is not None:
                return decided
        return False

    def compare(
        self, model: nn.Module, *, atol: float = 0.0, roles: Collection[str] = ("frozen", "trainable")
    ) -> SnapshotDiff:
        """Read ``model`` again by name and say what changed since the snapshot (one host transfer).

        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
        >>> snap = take_snapshot(net, frozen=["0.weight", "0.bias"])
        >>> net[0].weight = torch.nn.Parameter(torch.zeros(2, 2))
        >>> [(c.name, c.status, c.requires_grad_after) for c in snap.compare(net).changes]
        [('0.weight', 'replaced', True), ('0.bias', 'same', True)]
        """
        floats = Floats()
        resolve = self.measure(model, floats, atol=atol, roles=roles)
        floats.sync()
        return resolve()

    def measure(
        self, model: nn.Module, floats: Floats, *, atol: float = 0.0, roles: Collection[str] = ("frozen", "trainable"),
        quiet: Collection[str] = ("other",), skip: Collection[int] = (),
    ) -> Callable[[], SnapshotDiff]:
        """The device half of :meth:`compare`: add this comparison's numbers to ``floats``; after
        ``floats.sync()`` (the caller's one host transfer) the returned function gives the diff.

        Only the values of the watched names of ``roles`` are read (a guard reads the trainable ones
        only in its first checks); the others are compared by identity, shape and flags alone
        (``changed`` is None). The names of ``quiet`` roles that did not change at all are left out
        of the diff (a guard that checks every step asks only what changed). The values of the
        watched tensors ``skip`` (slots) are not read either where the name still holds the very
        tensor of the snapshot: the caller vouches for them (a guard's version counters and sweep)."""
        now, modules = named_state(model)
        with torch.no_grad():
            measured: dict[tuple[int, int], tuple[int | None, int | None]] = {}
            pending: list[tuple[_Entry, Held | None, bool, tuple[int, int] | None]] = []
            for name, e in self.entries.items():
                held = now.get(name)
                cur = None if held is None else held.tensor
                same = cur is not None and cur is e.ref()
                key = None
                if (
                    cur is not None and e.slot is not None and e.role in roles
                    and tuple(cur.shape) == e.shape and not _no_values(cur)
                    and not (same and e.slot in skip)
                ):  # fmt: skip
                    key = (e.slot, id(cur))
                    if key not in measured:
                        measured[key] = self._measure_one(e.slot, cur, floats)
                pending.append((e, held, same, key))
            added = [(n, h) for n, h in now.items() if n not in self.entries]

        def resolve() -> SnapshotDiff:
            groups: dict[tuple[Any, ...], list[NameChange]] = {}
            for e, held, same, key in pending:
                if e.role in quiet and _untouched(e, held, same, key, measured, floats):
                    continue
                change = self._change(e, held, same, key, measured, floats, modules, atol)
                if change.role == "other" and change.status == "same":
                    continue
                cur_id = None if held is None else id(held.tensor)
                group = (e.slot if e.slot is not None else e.name, cur_id, change.status)
                groups.setdefault(group, []).append(change)
            out = [
                _with_aliases(members[0], tuple(m.name for m in members[1:])) for members in groups.values()
            ]
            for name, held in added:
                out.append(self._added(name, held, modules))
            return SnapshotDiff(self.mode, tuple(out))

        return resolve

    def _measure_one(self, slot: int, cur: torch.Tensor, floats: Floats) -> tuple[int | None, int | None]:
        """(fingerprint changed?, max |diff|) of ``cur`` against watched tensor ``slot``, on the device."""
        fp = self.fingerprints[slot]
        host = self._host_value(slot, cur) if fp.device.type == "cpu" else None
        if host is not None:  # the CPU kernel's int: no tensor op, nothing to transfer
            before = self._host_fps.get(slot)
            if before is None:
                before = self._host_fps[slot] = int(fp)
            bits = floats.add(float(host != before))
        else:
            bits = floats.add(fingerprint_tensor(cur).to(fp.device).ne(fp).to(wide_float(fp.device)))
        copy = self.copies[slot]
        if copy is None:
            return bits, None
        now = local_tensor(cur).detach()
        if now.device.type == "cpu" and copy.device.type == "cpu" and bit_equal(now, copy):
            return bits, floats.add(torch.zeros((), dtype=torch.float64))
        return bits, floats.add(max_abs_diff(now, copy))

    def _host_value(self, slot: int, cur: torch.Tensor) -> int | None:
        """``host_fingerprint(cur)``, through the slot's reader where ``cur`` lies where it did."""
        if slot not in self._readers:
            self._readers[slot] = slice_reader(cur)
        reader = self._readers[slot]
        if reader is not None and reader.same_memory(cur) and cur.numel() * cur.element_size() == reader.nbytes:
            return reader.whole(cur, torch.get_num_threads())
        return host_fingerprint(cur)

    def _replaced_module(self, name: str, modules: dict[str, nn.Module]) -> tuple[str | None, str | None, str | None]:
        """(the outermost module on ``name``'s path that is a new object, its type before, after)."""
        parts = name.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            old = self.modules.get(prefix)
            cur = modules.get(prefix)
            if old is None:
                return None, None, None  # a module the snapshot did not have: not a replacement
            if cur is not old[0]():
                return prefix, old[1], None if cur is None else type(cur).__name__
        return None, None, None

    def _change(
        self,
        e: _Entry,
        held: Held | None,
        same: bool,
        key: tuple[int, int] | None,
        measured: dict[tuple[int, int], tuple[int | None, int | None]],
        floats: Floats,
        modules: dict[str, nn.Module],
        atol: float,
    ) -> NameChange:
        old_type = self.modules.get(e.module_name, (None, None))[1]
        base: dict[str, Any] = {
            "name": e.name, "role": e.role, "is_param": e.is_param, "module_name": e.module_name,
            "shape_before": e.shape, "dtype_before": _dtype(e.dtype), "module_type_before": old_type,
            "requires_grad_before": e.requires_grad if e.is_param else None,
        }  # fmt: skip
        replaced_module, _, _ = self._replaced_module(e.name, modules)
        if held is None:
            return NameChange(status="removed", replaced_module=replaced_module, **base)
        cur = held.tensor
        changed: bool | None = None
        change: float | None = None
        if key is not None:
            bits_i, diff_i = measured[key]
            bits = floats.get(bits_i) or 0.0
            change = floats.get(diff_i)
            if atol and change is not None:
                changed = change > atol
            else:
                changed = bits > 0 or bool(change)
        kind_same = tuple(cur.shape) == e.shape and cur.dtype == e.dtype and held.is_param == e.is_param
        status = "same" if same and kind_same else "replaced"
        return NameChange(
            status=status, changed=changed, max_abs_change=change, same_object=same,
            shape_after=tuple(cur.shape), dtype_after=_dtype(cur.dtype),
            requires_grad_after=cur.requires_grad if held.is_param else None,
            module_type_after=module_type(held.module), replaced_module=replaced_module, **base,
        )  # fmt: skip

    def _added(self, name: str, held: Held, modules: dict[str, nn.Module]) -> NameChange:
        replaced_module, old_type, _ = self._replaced_module(name, modules)
        t = held.tensor
        return NameChange(
            name=name, role="frozen" if self.in_frozen_scope(name) else "other", status="added",
            is_param=held.is_param, module_name=held.module_name, shape_after=tuple(t.shape),
            dtype_after=_dtype(t.dtype), requires_grad_after=t.requires_grad if held.is_param else None,
            module_type_before=old_type, module_type_after=module_type(held.module),
            replaced_module=replaced_module,
        )  # fmt: skip


def _untouched(
    e: _Entry,
    held: Held | None,
    same: bool,
    key: tuple[int, int] | None,
    measured: dict[tuple[int, int], tuple[int | None, int | None]],
    floats: Floats,
) -> bool:
    """The same object under the name, of the same kind, shape, dtype and flag, and (where read)
    with the same bits: nothing at all happened to it."""
    if held is None or not same:
        return False
    t = held.tensor
    if held.is_param != e.is_param or tuple(t.shape) != e.shape or t.dtype != e.dtype:
        return False
    if e.is_param and t.requires_grad != e.requires_grad:
        return False
    if key is None:
        return True
    bits_i, diff_i = measured[key]
    return not floats.get(bits_i) and not floats.get(diff_i)


def _with_aliases(change: NameChange, aliases: tuple[str, ...]) -> NameChange:
    if not aliases:
        return change
    return NameChange(**{**{f: getattr(change, f) for f in change.__dataclass_fields__}, "aliases": aliases})


def take_snapshot(
    model: nn.Module,
    frozen: Iterable[str] = (),
    trainable: Iterable[str] = (),
    *,
    mode: Mode = "fingerprint",
    snapshot_device: str | torch.device | None = None,
) -> NamedSnapshot:
    """Record ``model``'s params and buffers by qualified name, to compare against later.

    Every name is recorded (identity, shape, dtype, ``requires_grad``, module); the ``frozen`` and
    ``trainable`` names are watched: one fingerprint per tensor, and in ``mode="exact"`` a copy of
    each frozen one (on ``snapshot_device`` if given). Tensors without values (meta, lazy) are
    recorded but not watched: :attr:`NamedSnapshot.skipped` names them.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    >>> snap = take_snapshot(net, frozen=["1.running_mean"], mode="exact")
    >>> net[1].running_mean = torch.ones(2)  # re-bound, not edited: seen by name
    >>> [(c.name, c.status, c.changed) for c in snap.compare(net).by_status("replaced")]
    [('1.running_mean', 'replaced', True)]
    """
    if mode not in ("exact", "fingerprint"):
        raise TorchscopeError(f"mode={mode!r} is not 'exact' or 'fingerprint'")
    snap_dev = None if snapshot_device is None else torch.device(snapshot_device)
    now, modules = named_state(model)
    roles: dict[str, str] = {}
    for role, names in (("frozen", frozen), ("trainable", trainable)):
        for n in names:
            if n not in now:
                raise TorchscopeError(f"{n!r} is not a param or buffer of the model; pass names from named_parameters()")
            roles.setdefault(n, role)
    entries: dict[str, _Entry] = {}
    slots: dict[int, int] = {}
    fingerprints: list[torch.Tensor] = []
    copies: list[torch.Tensor | None] = []
    skipped: list[str] = []
    with torch.no_grad():
        for name, held in now.items():
            t = held.tensor
            role = roles.get(name, "other")
            slot = None
            if role != "other":
                if _no_values(t):
                    skipped.append(name)
                else:
                    slot = slots.get(id(t))
                    if slot is None:
                        slot = slots[id(t)] = len(fingerprints)
                        fingerprints.append(fingerprint_tensor(t))
                        copies.append(None)
                    if role == "frozen" and mode == "exact" and copies[slot] is None:
                        loc = local_tensor(t).detach()
                        copies[slot] = loc.to(snap_dev, copy=True) if snap_dev is not None else loc.clone()
            entries[name] = _Entry(
                name, held.is_param, held.module_name, _ref(t), tuple(t.shape), t.dtype, t.requires_grad, role, slot
            )
    mods = {n: (_ref(m), module_type(m)) for n, m in modules.items()}
    return NamedSnapshot(mode, entries, mods, fingerprints, copies, tuple(skipped))

