"""The plain data :func:`torchscope.tree` returns, without torch.

Kept apart from the collector in ``_tree.py`` so that a cached tree can be read back and rendered
(``torchscope tree`` on a cache hit) without importing torch. ``ModuleTree.from_dict`` is the exact
inverse of ``to_dict``; it checks every field, so a damaged or foreign file is refused, not rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from torchscope._result import Record, Result, check_schema, read_float
from torchscope.errors import TorchscopeError

FREEZE_STATES: tuple[str, ...] = ("trainable", "frozen", "partial", "none")


# --- strict readers for from_dict: the dict may come from a file anyone could have edited -------


def _fields_of(cls: type, d: Any) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise TorchscopeError(f"{cls.__name__}.from_dict needs a dict, got {type(d).__name__}")
    expected = {f.name for f in fields(cls)}
    if set(d) != expected:
        missing, extra = sorted(expected - set(d)), sorted(set(d) - expected)
        raise TorchscopeError(
            f"not a {cls.__name__} dict: missing {missing}, unexpected {extra}; "
            "pass the output of to_dict() from this torchscope version"
        )
    return d


def _int(d: Mapping[str, Any], key: str) -> int:
    value = d[key]
    # bool is an int subclass; a JSON true where a count belongs is damage, not a count
    if not isinstance(value, int) or isinstance(value, bool):
        raise TorchscopeError(f"field {key!r} must be an int, got {value!r}")
    return value


def _bool(d: Mapping[str, Any], key: str) -> bool:
    value = d[key]
    if not isinstance(value, bool):
        raise TorchscopeError(f"field {key!r} must be a bool, got {value!r}")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise TorchscopeError(f"field {key!r} must be a str, got {value!r}")
    return value


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise TorchscopeError(f"field {key!r} must be a list, got {value!r}")
    return list(value)


def _strs(value: Any, key: str) -> tuple[str, ...]:
    return tuple(_str(v, key) for v in _list(value, key))


def _dtype_bytes(value: Any, key: str) -> tuple[tuple[str, int], ...]:
    out = []
    for pair in _list(value, key):
        items = _list(pair, key)
        if len(items) != 2:
            raise TorchscopeError(f"field {key!r} must hold (dtype, bytes) pairs, got {pair!r}")
        out.append((_str(items[0], key), _int({key: items[1]}, key)))
    return tuple(out)


@dataclass(frozen=True)
class HookCounts(Record):
    """Hooks already registered on one module (by the user or a library), per kind."""

    forward: int = 0
    forward_pre: int = 0
    backward: int = 0
    state_dict: int = 0
    load_state_dict: int = 0
    tensor: int = 0  # on the module's own parameters: Tensor.register_hook, post-accumulate-grad hooks

    @property
    def total(self) -> int:
        """All hooks of every kind."""
        return (
            self.forward + self.forward_pre + self.backward + self.state_dict + self.load_state_dict + self.tensor
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HookCounts:
        """The inverse of :meth:`to_dict`.

        >>> HookCounts.from_dict(HookCounts(forward=2).to_dict()) == HookCounts(forward=2)
        True
        """
        d = _fields_of(cls, d)
        return cls(**{f.name: _int(d, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class ModuleEntry(Record):
    """One module of the tree, in pre-order.

    ``params``, ``trainable_params``, ``frozen_params`` and ``buffers`` (elements) count everything
    under the module, each tensor once; ``own_params`` only its direct parameters. ``aliases`` are the
    other names of a module registered more than once (it is listed once, under its first name).
    ``signature`` is equal for structurally identical subtrees (same types, shapes, dtypes, flags),
    which renderers use to collapse repeated blocks.
    """

    name: str
    type: str
    depth: int
    params: int
    own_params: int
    trainable_params: int
    frozen_params: int
    buffers: int
    training: bool
    freeze: str
    hooks: HookCounts
    aliases: tuple[str, ...]
    extra: str
    signature: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModuleEntry:
        """The inverse of :meth:`to_dict`; a field of the wrong type is a :class:`TorchscopeError`."""
        d = _fields_of(cls, d)
        freeze = _str(d["freeze"], "freeze")
        if freeze not in FREEZE_STATES:
            raise TorchscopeError(f"field 'freeze' must be one of {FREEZE_STATES}, got {freeze!r}")
        return cls(
            name=_str(d["name"], "name"),
            type=_str(d["type"], "type"),
            depth=_int(d, "depth"),
            params=_int(d, "params"),
            own_params=_int(d, "own_params"),
            trainable_params=_int(d, "trainable_params"),
            frozen_params=_int(d, "frozen_params"),
            buffers=_int(d, "buffers"),
            training=_bool(d, "training"),
            freeze=freeze,
            hooks=HookCounts.from_dict(d["hooks"]),
            aliases=_strs(d["aliases"], "aliases"),
            extra=_str(d["extra"], "extra"),
            signature=_str(d["signature"], "signature"),
        )


@dataclass(frozen=True)
class TreeWarning(Record):
    """Something in the model that is probably not what its owner wants."""

    kind: str  # "norm_stats_drift" | "eval_in_train" | "lazy_params"
    module: str
    message: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TreeWarning:
        """The inverse of :meth:`to_dict`."""
        d = _fields_of(cls, d)
        return cls(*(_str(d[f.name], f.name) for f in fields(cls)))


@dataclass(frozen=True)
class AdapterInfo(Record):
    """One PEFT adapter (LoRA and kin) on the model: its settings and where it sits.

    ``modules`` are the base modules that carry it (``base_model.model...q_proj``), ``targets`` the
    names its config targets, ``modules_to_save`` the modules trained as full copies beside the
    frozen originals. ``params`` counts the adapter's own tensors (and the copies), each once.
    """

    name: str
    kind: str  # peft's type: "LORA", "ADALORA", "IA3", ...
    r: int | None
    alpha: float | None
    rank_pattern: bool  # some modules have their own r/alpha (rank_pattern, alpha_pattern)
    targets: tuple[str, ...]
    modules: tuple[str, ...]
    modules_to_save: tuple[str, ...]
    params: int
    trainable_params: int
    active: bool

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AdapterInfo:
        """The inverse of :meth:`to_dict`."""
        d = _fields_of(cls, d)
        r = d["r"]
        alpha = d["alpha"]
        if r is not None and (not isinstance(r, int) or isinstance(r, bool)):
            raise TorchscopeError(f"field 'r' must be an int or null, got {r!r}")
        if alpha is not None and (not isinstance(alpha, int | float | str) or isinstance(alpha, bool)):
            raise TorchscopeError(f"field 'alpha' must be a number or null, got {alpha!r}")
        return cls(
            name=_str(d["name"], "name"),
            kind=_str(d["kind"], "kind"),
            r=r,
            alpha=None if alpha is None else read_float(alpha, "alpha"),
            rank_pattern=_bool(d, "rank_pattern"),
            targets=_strs(d["targets"], "targets"),
            modules=_strs(d["modules"], "modules"),
            modules_to_save=_strs(d["modules_to_save"], "modules_to_save"),
            params=_int(d, "params"),
            trainable_params=_int(d, "trainable_params"),
            active=_bool(d, "active"),
        )


@dataclass(frozen=True, repr=False)
class ModuleTree(Result):
    """What ``tree(model)`` found. All counts are unique tensors; sizes are in bytes."""

    model_type: str
    wrappers: tuple[str, ...]
    total_params: int
    trainable_params: int
    frozen_params: int
    total_buffers: int
    param_bytes: tuple[tuple[str, int], ...]  # (dtype, bytes), largest first
    buffer_bytes: tuple[tuple[str, int], ...]
    devices: tuple[str, ...]
    modules_in_train_mode: int
    modules_in_eval_mode: int
    tied: tuple[tuple[str, ...], ...]
    global_hooks: int
    modules: tuple[ModuleEntry, ...]
    warnings: tuple[TreeWarning, ...]
    # PEFT adapters (empty for a model without any); quantized params count by their logical size
    adapters: tuple[AdapterInfo, ...] = ()

    SCHEMA = "torchscope.tree/1"

    @property
    def total_param_bytes(self) -> int:
        """Bytes of all parameters, every dtype."""
        return sum(b for _, b in self.param_bytes)

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per module, in pre-order (hooks as their total): what :meth:`to_dataframe` holds."""
        return [{**m.to_dict(), "aliases": list(m.aliases), "hooks": m.hooks.total} for m in self.modules]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModuleTree:
        """Rebuild a tree from :meth:`to_dict` output (e.g. ``torchscope tree --json``), tuples and all.

        Every field is checked; anything else raises :class:`~torchscope.errors.TorchscopeError`.

        >>> import json
        >>> t = ModuleTree("Net", (), 0, 0, 0, 0, (), (), (), 1, 0, (), 0, (), ())
        >>> ModuleTree.from_dict(json.loads(json.dumps(t.to_dict()))) == t
        True
        """
        check_schema(d, cls.SCHEMA)
        d = _fields_of(cls, {k: v for k, v in d.items() if k != "schema"})
        return cls(
            model_type=_str(d["model_type"], "model_type"),
            wrappers=_strs(d["wrappers"], "wrappers"),
            total_params=_int(d, "total_params"),
            trainable_params=_int(d, "trainable_params"),
            frozen_params=_int(d, "frozen_params"),
            total_buffers=_int(d, "total_buffers"),
            param_bytes=_dtype_bytes(d["param_bytes"], "param_bytes"),
            buffer_bytes=_dtype_bytes(d["buffer_bytes"], "buffer_bytes"),
            devices=_strs(d["devices"], "devices"),
            modules_in_train_mode=_int(d, "modules_in_train_mode"),
            modules_in_eval_mode=_int(d, "modules_in_eval_mode"),
            tied=tuple(_strs(group, "tied") for group in _list(d["tied"], "tied")),
            global_hooks=_int(d, "global_hooks"),
            modules=tuple(ModuleEntry.from_dict(m) for m in _list(d["modules"], "modules")),
            warnings=tuple(TreeWarning.from_dict(w) for w in _list(d["warnings"], "warnings")),
            adapters=tuple(AdapterInfo.from_dict(a) for a in _list(d["adapters"], "adapters")),
        )
