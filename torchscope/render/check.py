"""Rich view of a :class:`~torchscope._check.StepReport`: one ✓/✗ line per invariant, the cause and fix
under each ✗, and a summary of what was checked. No torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

if TYPE_CHECKING:
    from torchscope._check import StepReport, Violation

#: What each violation kind means when it does NOT happen: the invariant, as the panel states it.
INVARIANTS: dict[str, str] = {
    "frozen_param_changed": "frozen params unchanged",
    "frozen_buffer_changed": "frozen buffers unchanged (norm running stats)",
    "trainable_not_updated": "every trainable param updated",
    "nonfinite": "params, grads and buffers finite",
    "optimizer_missing_param": "optimizer holds every trainable param",
    "optimizer_frozen_param": "no frozen param with weight decay or momentum state",
    "optimizer_stale_param": "optimizer holds nothing outside the model",
    "optimizer_duplicate_param": "no param twice in the optimizer",
    "tied_conflict": "tied params frozen under all their names or none",
}

MAX_NAMES = 6


def fmt_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    >>> fmt_bytes(512), fmt_bytes(3 * 1024**2)
    ('512 B', '3.0 MiB')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns


def _names(violations: list[Violation]) -> str:
    names = [v.name for v in violations]
    if violations and violations[0].kind == "frozen_buffer_changed":
        # name the modules once, then which of their buffers moved
        modules = list(dict.fromkeys(n.rpartition(".")[0] or n for n in names))
        buffers = list(dict.fromkeys(n.rpartition(".")[2] for n in names))
        return f"{_few(modules)} ({', '.join(buffers)})"
    return _few(names)


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _change(violations: list[Violation]) -> str:
    changes = [v.max_abs_change for v in violations if v.max_abs_change is not None]
    return f" (max |change| {max(changes):.3g})" if changes and max(changes) > 0 else ""


def summary_line(report: StepReport) -> str:
    """What was checked, in one line."""
    steps = "" if report.optimizer_steps is None else f", {report.optimizer_steps} optimizer step(s)"
    ranks = f", {report.world_size} ranks" if report.world_size > 1 else ""
    return (
        f"checked {report.frozen_params} frozen + {report.trainable_params} trainable of {report.params} params, "
        f"{report.frozen_buffers} frozen of {report.buffers} buffers ({fmt_bytes(report.bytes_checked)}); "
        f"{report.mode} mode, snapshot {fmt_bytes(report.snapshot_bytes)}{steps}{ranks}"
    )


def render_check(report: StepReport, *, title: str = "check-freeze") -> RenderableType:
    """A panel with a ✓ or ✗ line per invariant checked; under each ✗ the tensors, the cause and the fix.

    Violations of one kind that share a cause are listed once, with all their names.
    """
    lines: list[RenderableType] = []
    for kind in report.checks:
        found = [v for v in report.violations if v.kind == kind]
        label = INVARIANTS.get(kind, kind)
        if not found:
            lines.append(Text.assemble(("✓ ", "bold green"), (label, "")))
            continue
        lines.append(Text.assemble(("✗ ", "bold red"), (label, "bold"), (f"  {len(found)}× {kind}", "red")))
        by_cause: dict[str, list[Violation]] = {}
        for v in found:
            by_cause.setdefault(v.cause, []).append(v)
        for cause, group in by_cause.items():
            lines.append(Padding(Text.assemble((_names(group), "yellow"), (_change(group), "dim")), (0, 0, 0, 2)))
            lines.append(Padding(Text(cause), (0, 0, 0, 4)))
    lines.append(Text(""))
    lines.append(Text(summary_line(report), style="dim"))
    verdict = "all invariants hold" if report.ok else f"{len(report.violations)} violation(s)"
    mark, style = ("✓", "green") if report.ok else ("✗", "red")
    return Panel(Group(*lines), title=f"{title}: {mark} {verdict}", title_align="left", border_style=style)
