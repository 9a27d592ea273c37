"""One cause, said once: violations that share a kind and a cause become one group, with the count,
a few names, and the one call that fixes them all (``freeze(model, "features.*")``). Pure, no torch."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from torchscope._checkparts.report import Violation, ViolationGroup

__all__ = ["FREEZE_FIX", "covering_patterns", "group_violations"]

#: The fix template of a param expected frozen that still requires grad; ``{patterns}`` is filled
#: with the patterns covering the whole group.
FREEZE_FIX = "torchscope.freeze(model, {patterns})"


def _common_prefix(names: Sequence[str]) -> list[str]:
    parts = [n.split(".") for n in names]
    prefix: list[str] = []
    for column in zip(*parts, strict=False):
        if any(c != column[0] for c in column):
            break
        prefix.append(column[0])
    return prefix


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def covering_patterns(names: Sequence[str], keep: Collection[str] = ()) -> list[str]:
    """The fewest, widest patterns that select every one of ``names`` and none of ``keep``.

    A pattern is the deepest module under which all the names lie (``"features.*"``), split into
    its children only where a wider pattern would also select a name of ``keep`` (a param that must
    stay trainable). A single name is its own pattern.

    >>> covering_patterns(["features.0.weight", "features.0.bias", "features.3.block.1.bias"])
    ['features.*']
    >>> covering_patterns(["features.0.weight", "features.0.bias", "features.3.bias"], keep=["features.5.weight"])
    ['features.0.*', 'features.3.bias']
    >>> covering_patterns(["conv1.weight", "bn1.weight", "bn1.bias"])
    ['conv1.weight', 'bn1.*']
    """
    names = list(dict.fromkeys(names))
    if not names:
        return []
    if len(names) == 1:
        return names
    prefix = ".".join(_common_prefix(names))
    if prefix and prefix not in names and not any(_under(k, prefix) for k in keep):
        return [f"{prefix}.*"]
    # split on the next component, in the order the names come
    depth = len(prefix.split(".")) if prefix else 0
    children: dict[str, list[str]] = {}
    for n in names:
        parts = n.split(".")
        children.setdefault(".".join(parts[: depth + 1]), []).append(n)
    if len(children) == 1:  # the prefix is itself one of the names and a module above others
        return names
    out: list[str] = []
    for group in children.values():
        out += covering_patterns(group, keep)
    return out


def group_violations(violations: Sequence[Violation], *, keep: Collection[str] = ()) -> tuple[ViolationGroup, ...]:
    """Violations that share a kind and a cause as one group each, in order of first appearance.

    ``keep`` are names the fix must not select (params that must stay trainable).

    >>> vs = [Violation("frozen_param_changed", f"features.{i}.weight", 0.1, "it requires grad",
    ...                 fix=FREEZE_FIX) for i in range(20)]
    >>> [g.fix for g in group_violations(vs)]
    ["torchscope.freeze(model, 'features.*')"]
    """
    groups: dict[tuple[str, str, str | None], list[Violation]] = {}
    for v in violations:
        groups.setdefault((v.kind, v.cause, v.fix), []).append(v)
    out = []
    for (kind, cause, fix), members in groups.items():
        names = tuple(v.name for v in members)
        changes = [v.max_abs_change for v in members if v.max_abs_change is not None]
        call = None
        if fix is not None:
            call = fix.format(patterns=", ".join(repr(p) for p in covering_patterns(names, keep)))
        out.append(ViolationGroup(kind, cause, names, max(changes) if changes else None, call))
    return tuple(out)
