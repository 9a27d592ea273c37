"""``diff_checkpoints``: compare two checkpoints tensor by tensor; prove the backbone is the pretrained one.

Each tensor is ``unchanged`` (bit for bit: a NaN that stayed the same NaN is unchanged),
``changed`` (with the largest absolute change and the relative change of its norm,
``||b - a|| / ||a||``, over the values finite on both sides, and what happened to the others:
NaN that became finite, values that became NaN or inf, an inf whose sign flipped), ``missing`` (in
A only), ``added`` (in B only) or ``shape_changed``. ``expect_frozen`` patterns name the tensors that must be unchanged; any other
status for them makes the report not ``ok``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from torchscope._loader import extract_state_dict, load_model, strip_common_prefix, torch_load
from torchscope._loader.safetensors_io import is_safetensors, load_safetensors
from torchscope._patterns import match_names
from torchscope._result import Record, Result
from torchscope.errors import SpecError, TorchscopeError

STATUSES: tuple[str, ...] = ("unchanged", "changed", "missing", "added", "shape_changed")
NONFINITE: dict[str, str] = {
    "nan_to_finite": "was NaN, now finite",
    "nan_to_inf": "was NaN, now inf",
    "became_nan": "became NaN",
    "inf_appeared": "inf appeared (was finite)",
    "inf_gone": "was inf, now finite",
    "inf_sign_changed": "sign of inf changed",
    "bits_only": "same value, other bits (0.0 and -0.0, or another NaN)",
}
"""What can happen to a value that ``max |Δ|`` cannot say: the keys of ``TensorDiff.nonfinite``."""
_CHUNK = 1 << 18

Checkpoint = str | Path | Mapping[str, Any]


@dataclass(frozen=True)
class TensorDiff(Record):
    """One tensor of the two checkpoints."""

    name: str
    status: str
    shape_a: tuple[int, ...] | None
    shape_b: tuple[int, ...] | None
    dtype_a: str | None
    dtype_b: str | None
    max_abs: float | None
    rel_change: float | None
    expected_frozen: bool
    module_type: str | None = None
    nonfinite: tuple[tuple[str, int], ...] = ()  # (a key of NONFINITE, how many values), none at 0

    DERIVED = ("cause",)
    MAPPINGS = ("nonfinite",)

    @property
    def cause(self) -> str:
        """What happened to the values ``max_abs`` leaves out, in words (``""`` when nothing did).

        >>> TensorDiff("w", "changed", (2,), (2,), "float32", "float32", 0.0, 0.0, False,
        ...            nonfinite=(("nan_to_finite", 1),)).cause
        '1 was NaN, now finite'
        """
        return "; ".join(f"{n} {NONFINITE[kind]}" for kind, n in self.nonfinite)

    @property
    def violates(self) -> bool:
        """Expected frozen, yet not unchanged."""
        return self.expected_frozen and self.status != "unchanged"


@dataclass(frozen=True, repr=False)
class DiffReport(Result):
    """Every tensor's status, in checkpoint order (A's names first, then names only B has)."""

    ok: bool
    a: str
    b: str
    entries: tuple[TensorDiff, ...]
    arch: str | None = None
    expect_frozen: tuple[str, ...] = ()
    not_in_arch: tuple[str, ...] = ()

    SCHEMA = "torchscope.diff/1"
    DERIVED = ("counts", "violation_names")
    KEYS = (("entries", "tensors"), ("violation_names", "violations"))

    @property
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for e in self.entries:
            out[e.status] += 1
        return out

    @property
    def violations(self) -> tuple[TensorDiff, ...]:
        """Expected-frozen tensors that are not unchanged."""
        return tuple(e for e in self.entries if e.violates)

    @property
    def violation_names(self) -> tuple[str, ...]:
        """The names of :attr:`violations` (``to_dict()["violations"]``)."""
        return tuple(e.name for e in self.violations)

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per tensor: what :meth:`to_dataframe` holds."""
        return [e.to_dict() for e in self.entries]


def _load(ckpt: Checkpoint, label: str, unsafe_load: bool, verify: bool) -> dict[str, torch.Tensor]:
    if isinstance(ckpt, Mapping):
        return extract_state_dict(ckpt, Path(label))
    if not isinstance(ckpt, str | Path):
        raise TorchscopeError(f"checkpoint {label} must be a path or a state_dict, not {type(ckpt).__name__}")
    path = Path(ckpt)
    if not path.is_file():
        raise SpecError(f"checkpoint not found: {path}; check the path")
    if is_safetensors(path):
        return load_safetensors(path, "cpu")
    return extract_state_dict(torch_load(path, "cpu", unsafe_load, verify), path)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """The values of ``t`` as one float64-ready vector (a complex value as its two parts)."""
    t = t.detach()
    return torch.view_as_real(t).reshape(-1) if t.is_complex() else t.reshape(-1)


def _stats(a: torch.Tensor, b: torch.Tensor) -> tuple[float | None, float | None, tuple[tuple[str, int], ...]]:
    """(max |b - a|, ||b - a|| / ||a||, what happened to NaN and inf), a chunk at a time, one sync.

    The two numbers are over the positions finite in both (None when there is none); a value that
    is NaN or inf on either side is counted by what happened to it instead (the keys of
    :data:`NONFINITE`), since no difference of it means anything.
    """
    fa, fb = _flat(a), _flat(b)
    zero = torch.zeros((), dtype=torch.float64)
    max_abs, diff_sq, a_sq, both = zero.clone(), zero.clone(), zero.clone(), zero.clone()
    events = torch.zeros(6, dtype=torch.float64)
    for start in range(0, fa.numel(), _CHUNK):
        ca = fa[start : start + _CHUNK].to(torch.float64)
        cb = fb[start : start + _CHUNK].to(torch.float64)
        na, nb, ia, ib = ca.isnan(), cb.isnan(), ca.isinf(), cb.isinf()
        finite = ~(na | nb | ia | ib)
        d = torch.where(finite, cb - ca, 0.0).abs_()
        max_abs = torch.maximum(max_abs, d.max())
        diff_sq += d.square().sum()
        a_sq += torch.where(finite, ca, 0.0).square().sum()
        both += finite.sum()
        events += torch.stack([
            (na & ~nb & ~ib).sum(), (na & ib).sum(), (~na & nb).sum(), (~na & ~ia & ib).sum(),
            (ia & ~nb & ~ib).sum(), (ia & ib & (ca != cb)).sum(),
        ]).to(torch.float64)  # fmt: skip
    m, ds, asq, n, *counts = torch.cat([torch.stack([max_abs, diff_sq, a_sq, both]), events]).tolist()
    happened = [(k, int(c)) for k, c in zip(list(NONFINITE)[:6], counts, strict=True) if c]
    if n == 0:
        return None, None, tuple(happened)
    rel = math.sqrt(ds) / math.sqrt(asq) if asq > 0 else (0.0 if ds == 0 else math.inf)
    if not happened and m == 0 and a.dtype == b.dtype:  # not bit-equal, yet every value the same
        happened = [("bits_only", _bits_differing(a, b))]
    return float(m), float(rel), tuple(happened)


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The bytes of ``t``, in order (for bit-for-bit comparison)."""
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def _bits_differing(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many values of ``a`` and ``b`` (same dtype and shape) differ in any bit."""
    size = a.element_size()
    diff = _bits(a).reshape(-1, size) != _bits(b).reshape(-1, size)
    return int(diff.any(dim=1).sum())


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit: NaN where it was NaN, with the same bits, is unchanged; -0.0 for 0.0 is not."""
    if a.dtype != b.dtype:
        return False
    try:
        return bool(torch.equal(_bits(a), _bits(b)))
    except RuntimeError:  # a layout with no byte view (sparse, quantized): compare values
        return bool(torch.equal(a, b))


def _arch_names(arch: str) -> dict[str, str]:
    """State-dict key -> type name of the module that owns it, from the architecture built on meta."""
    model = load_model(arch, device="meta")
    modules = dict(model.named_modules())
    out: dict[str, str] = {}
    for key in model.state_dict():
        owner = key.rpartition(".")[0]
        out[key] = type(modules.get(owner, model)).__name__
    return out


def diff_checkpoints(
    a: Checkpoint,
    b: Checkpoint,
    *,
    arch: str | None = None,
    expect_frozen: str | Sequence[str] | None = None,
    unsafe_load: bool = False,
    verify: bool = True,
) -> DiffReport:
    """Compare checkpoints ``a`` and ``b`` (paths or state_dicts) tensor by tensor.

    ``arch`` (a model spec such as ``"resnet18"``) names each tensor's module type and strips
    wrapper prefixes (``model.``) that do not fit it; ``expect_frozen`` glob patterns select the
    tensors that must be unchanged; ``unsafe_load`` allows files that pickle a whole module;
    ``verify=False`` skips checking the archives' CRC-32s (a damaged tensor is an error by default).

    Args:
        a: The first checkpoint: a path or a state_dict.
        b: The second checkpoint: a path or a state_dict.
        arch: A model spec that names each tensor's module type and strips wrapper prefixes.
        expect_frozen: Glob patterns of the tensors that must be unchanged.
        unsafe_load: Allow files that pickle a whole module (runs code from the file).
        verify: Check the archives' CRC-32s first.

    Returns:
        The ``DiffReport``: every tensor's status and change, the counts, and ``ok`` (the expected
        frozen tensors are unchanged).

    Raises:
        TorchscopeError: A checkpoint is missing, damaged or not a state_dict, or a pattern matches nothing.

    >>> import torch
    >>> a = torch.nn.Linear(2, 2).state_dict()
    >>> b = {k: v.clone() for k, v in a.items()}
    >>> b["bias"] += 1
    >>> report = diff_checkpoints(a, b, expect_frozen=["weight"])
    >>> report.ok, report.counts["changed"]
    (True, 1)
    """
    label_a = str(a) if isinstance(a, str | Path) else "A"
    label_b = str(b) if isinstance(b, str | Path) else "B"
    sa = _load(a, label_a, unsafe_load, verify)
    sb = _load(b, label_b, unsafe_load, verify)
    types: dict[str, str] = {}
    not_in_arch: tuple[str, ...] = ()
    if arch is not None:
        types = _arch_names(arch)
        sa = strip_common_prefix(sa, types)
        sb = strip_common_prefix(sb, types)
        not_in_arch = tuple(k for k in dict.fromkeys([*sa, *sb]) if k not in types)
    names = list(dict.fromkeys([*sa, *sb]))
    patterns: list[str] = []
    if expect_frozen:
        items = [expect_frozen] if isinstance(expect_frozen, str) else list(expect_frozen)
        patterns = [p.strip() for item in items for p in item.split(",") if p.strip()]
    frozen = set(match_names(names, patterns, what="checkpoint tensor")) if patterns else set()
    entries: list[TensorDiff] = []
    for name in names:
        ta, tb = sa.get(name), sb.get(name)
        shape_a = None if ta is None else tuple(ta.shape)
        shape_b = None if tb is None else tuple(tb.shape)
        dtype_a = None if ta is None else str(ta.dtype).removeprefix("torch.")
        dtype_b = None if tb is None else str(tb.dtype).removeprefix("torch.")
        max_abs = rel = None
        nonfinite: tuple[tuple[str, int], ...] = ()
        if ta is None:
            status = "added"
        elif tb is None:
            status = "missing"
        elif shape_a != shape_b:
            status = "shape_changed"
        elif _same(ta, tb):
            status, max_abs, rel = "unchanged", 0.0, 0.0
        else:
            status = "changed"
            max_abs, rel, nonfinite = _stats(ta, tb)
        entries.append(
            TensorDiff(
                name, status, shape_a, shape_b, dtype_a, dtype_b, max_abs, rel, name in frozen, types.get(name),
                nonfinite,
            )
        )  # fmt: skip
    return DiffReport(
        ok=not any(e.violates for e in entries),
        a=label_a,
        b=label_b,
        entries=tuple(entries),
        arch=arch,
        expect_frozen=tuple(patterns),
        not_in_arch=not_in_arch,
    )
