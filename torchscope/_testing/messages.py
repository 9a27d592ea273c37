"""What a failed check says: plain-text tables (no ANSI codes, no tensors), violations with their
causes written once, and the record each check hands to the pytest plugin."""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchscope._checkparts.grouping import group_violations
from torchscope._checkparts.report import Violation, ViolationGroup
from torchscope._format import format_shape

__all__ = [
    "MAX_ROWS",
    "finish",
    "fmt",
    "format_table",
    "group_rows",
    "literal_call",
    "message",
    "plural",
    "shape_of",
    "split_cause",
    "violation_message",
    "violation_table",
]

MAX_ROWS = 20


def fmt(value: float) -> str:
    """A number in three significant digits; NaN and Inf as Python writes them."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.3g}"


def shape_of(t: torch.Tensor | None) -> str:
    """A tensor's shape as torch writes it: ``[3]``, ``[2, 4]``, ``-`` for none."""
    if t is None:
        return "-"
    if isinstance(t, nn.parameter.UninitializedParameter):
        return "(uninitialized)"
    return format_shape(t.shape)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, max_rows: int = MAX_ROWS) -> str:
    """A plain-text table, two spaces of indent, a dashed rule under the header.

    >>> print(format_table(["name", "shape"], [["fc.weight", "(2, 4)"]]))
      name       shape
      ---------  ------
      fc.weight  (2, 4)
    """
    shown = list(rows[:max_rows])
    widths = [max([len(h)] + [len(r[i]) for r in shown]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return ("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    out = [line(headers), line(["-" * w for w in widths]), *(line(r) for r in shown)]
    if len(rows) > max_rows:
        out.append(f"  ... and {len(rows) - max_rows} more")
    return "\n".join(out)


def message(check: str, title: str, table: str, fixes: Sequence[str]) -> str:
    """``check: title``, the table, then each distinct fix once."""
    parts = [f"{check}: {title}", "", table]
    unique = list(dict.fromkeys(f for f in fixes if f))
    if unique:
        parts.append("")
        parts.extend(f"fix: {f}" for f in unique)
    return "\n".join(parts)


def _emit(
    check: str, ok: bool, text: str | None, report: dict[str, Any] | None, error: BaseException | None = None
) -> None:
    # The plugin is only in sys.modules when pytest loaded it; outside pytest this is a no-op.
    # It gets the error too: a failure counts as a failed check only if that error escapes the test.
    plugin = sys.modules.get("torchscope.pytest_plugin")
    if plugin is not None:
        plugin.record_check({"check": check, "test": "", "ok": ok, "message": text, "report": report}, error)


def finish(check: str, text: str | None, report: dict[str, Any] | None = None) -> None:
    """Record the check's outcome, then raise ``AssertionError(text)`` unless ``text`` is None.

    The error carries ``.check`` (the helper's name) and ``.report`` (its data).
    """
    __tracebackhide__ = True
    if text is None:
        _emit(check, True, None, report)
        return
    # A plain AssertionError (pytest prints "AssertionError: ..."), carrying the data too.
    error = AssertionError(text)
    error.check = check  # type: ignore[attr-defined]
    error.report = report  # type: ignore[attr-defined]
    _emit(check, False, text, report, error)
    raise error


# ---------------------------------------------------------------------------------------------
# Violations: one row per tensor; under the table each cause once, with how many tensors share it,
# a few of their names, and the one call that fixes them all where there is one.


def split_cause(cause: str, default_fix: str = "") -> tuple[str, str]:
    """check_step's causes read "what happened; how to fix it": split them at the first ``"; "``."""
    head, sep, tail = cause.partition("; ")
    return (head, tail) if sep else (cause, default_fix)


def literal_call(call: str) -> str:
    """A finished call (``torchscope.freeze(model, 'a.*')``) as a ``call`` template that stays itself."""
    return call.replace("{", "{{").replace("}", "}}")


def group_rows(violations: Sequence[Mapping[str, Any]], *, keep: Collection[str] = ()) -> tuple[ViolationGroup, ...]:
    """Violation dicts that share a kind, a cause and a fix, as one group each (in order of first row).

    A dict's optional ``call`` is a template such as ``torchscope.freeze(model, {patterns})``: the
    group's ``fix`` fills it with the fewest patterns that cover every name of the group and none of
    ``keep`` (params that must stay trainable). Each group's ``cause`` reads "cause; fix".

    >>> rows = [{"kind": "frozen_param_changed", "name": f"features.{i}.weight", "cause": "it requires grad",
    ...          "fix": "", "call": "torchscope.freeze(model, {patterns})"} for i in range(20)]
    >>> [(g.count, g.few(), g.fix) for g in group_rows(rows, keep=["fc.weight"])]
    [(20, 'features.0.weight, features.1.weight, features.2.weight and 17 more', "torchscope.freeze(model, 'features.*')")]
    """
    return group_violations(
        [
            Violation(
                v["kind"],
                v["name"],
                v.get("max_abs_change"),
                f"{v.get('cause') or ''}; {v['fix']}" if v.get("fix") else v.get("cause") or "",
                v.get("call"),
            )
            for v in violations
        ],
        keep=keep,
    )


def violation_table(
    violations: Sequence[Mapping[str, Any]],
    *,
    groups: Sequence[ViolationGroup] | None = None,
    max_rows: int = MAX_ROWS,
) -> str:
    """Render violations (``kind``, ``name``, ``shape``, ``max_abs_change``, ``cause``, ``fix``) as text.

    Violations that share a cause are one numbered group under the table (see :func:`group_rows`):
    one line with the count, a few names and the cause, then the fix.

    >>> print(violation_table([{"kind": "frozen_param_changed", "name": f"fc{i}.weight", "shape": "(2, 4)",
    ...                         "max_abs_change": 0.5, "cause": "requires_grad=True", "fix": "freeze it"}
    ...                        for i in range(4)]))
      kind                  name        shape   max |Δ|  cause
      --------------------  ----------  ------  -------  -----
      frozen_param_changed  fc0.weight  (2, 4)  0.5      [1]
      frozen_param_changed  fc1.weight  (2, 4)  0.5      [1]
      frozen_param_changed  fc2.weight  (2, 4)  0.5      [1]
      frozen_param_changed  fc3.weight  (2, 4)  0.5      [1]
    <BLANKLINE>
      [1] 4 tensors (fc0.weight, fc1.weight, fc2.weight and 1 more): requires_grad=True
          fix: freeze it
    """
    groups = group_rows(violations) if groups is None else groups
    number = {(g.kind, n): i for i, g in enumerate(groups, 1) for n in g.names}
    rows = []
    for v in violations[:max_rows]:
        change = v.get("max_abs_change")
        rows.append([v["kind"], v["name"], v.get("shape", "-"), "-" if change is None else fmt(change),
                     f"[{number[(v['kind'], v['name'])]}]"])
    out = [format_table(["kind", "name", "shape", "max |Δ|", "cause"], rows, max_rows=max_rows)]
    if len(violations) > max_rows:
        out.append(f"  ... and {len(violations) - max_rows} more")
    out.append("")
    for i, g in enumerate(groups, 1):
        cause, fix = split_cause(g.cause)
        out.append(f"  [{i}] {cause}" if g.count == 1 else f"  [{i}] {g.count} tensors ({g.few()}): {cause}")
        out.extend(f"      fix: {f}" for f in (fix, g.fix) if f)
    return "\n".join(out)


def violation_message(
    check: str, title: str, violations: Sequence[Mapping[str, Any]], groups: Sequence[ViolationGroup]
) -> str:
    return f"{check}: {title}\n\n{violation_table(violations, groups=groups)}"
