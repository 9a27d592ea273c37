"""Rich view of a :class:`~torchscope.StepReport`: one ✓/✗ line per invariant, each cause once with
its names and the one call that fixes them all, the step that was checked, and what limits the
verdict. No torch import.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

from torchscope._check.byname import BY_NAME_KINDS
from torchscope._check.grouping import group_violations
from torchscope._check.report import StepReport, ViolationGroup
from torchscope._format import format_bytes

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
    "tensor_replaced": "every tensor under check is the one the step started with (none replaced)",
    "tensor_removed": "no name under check vanished",
    "tensor_added": "no new name where everything was frozen",
    "requires_grad_changed": "requires_grad flags unchanged",
    "head_not_trained": "a new task head trains (in modules_to_save)",
}

#: The invariants about frozen tensors: vacuous when nothing is frozen, so not shown as held.
FROZEN_KINDS = ("frozen_param_changed", "frozen_buffer_changed", "optimizer_frozen_param", "tied_conflict")

#: The by-name checks, said in one line while all of them hold.
BY_NAME_HELD = "by name: no tensor under check replaced, gone or added; requires_grad flags unchanged"

MAX_NAMES = 3  # "a few names": the count and the fix say the rest


def _names(group: ViolationGroup) -> str:
    names = list(group.names)
    if group.kind == "frozen_buffer_changed":
        # name the modules once, then which of their buffers moved
        modules = list(dict.fromkeys(n.rpartition(".")[0] or n for n in names))
        buffers = list(dict.fromkeys(n.rpartition(".")[2] for n in names))
        return f"{_few(modules)} ({', '.join(buffers)})"
    return _few(names)


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _change(group: ViolationGroup) -> str:
    change = group.max_abs_change
    return f" (max |change| {change:.3g})" if change is not None and change > 0 else ""


def _first_step(report: StepReport, group: ViolationGroup) -> str:
    """`` from step 3`` where a guard saw when the group's changes first appeared."""
    names = set(group.names)
    steps = [v.step for v in report.violations if v.kind == group.kind and v.name in names and v.step is not None]
    return f" from step {min(steps)}" if steps else ""


def summary_line(report: StepReport) -> str:
    """What was checked, in one line."""
    steps = "" if report.optimizer_steps is None else f", {report.optimizer_steps} optimizer step(s)"
    ranks = f", {report.world_size} ranks" if report.world_size > 1 else ""
    if report.guard_step is not None:
        steps += f", guard watched {report.guard_step} step(s) against the start"
    return (
        f"checked {report.frozen_params} frozen + {report.trainable_params} trainable of {report.params} params, "
        f"{report.frozen_buffers} frozen of {report.buffers} buffers ({format_bytes(report.bytes_checked)}); "
        f"{report.mode} mode, snapshot {format_bytes(report.snapshot_bytes)}{steps}{ranks}"
    )


def verdict(report: StepReport) -> tuple[str, str]:
    """The verdict in words and its colour: a check that had nothing to look at is not "all hold"."""
    if not report.ok:
        return f"✗ {len(report.violations)} violation(s)", "red"
    if report.nothing_frozen:
        return "! nothing frozen, nothing checked", "yellow"
    if report.status("trainable_not_updated") == "not_checked" and report.trainable_params == 0:
        return "! nothing trainable, updates not checked", "yellow"
    if report.not_checked:
        return f"✓ all checked invariants hold ({len(report.not_checked)} not checked)", "green"
    return "✓ all invariants hold", "green"


def render_check(report: StepReport, *, title: str = "check-freeze") -> RenderableType:
    """A panel with a ✓ or ✗ line per invariant checked; under each ✗ every cause once, with its
    names, its count and the one call that fixes them all.

    The verdict leads the title, so a long model spec is what gets cut at a narrow width, never
    the verdict.
    """
    groups = report.groups or group_violations(report.violations)
    lines: list[RenderableType] = []
    by_name = [k for k in report.checks if k in BY_NAME_KINDS]
    together = len(by_name) == len(BY_NAME_KINDS) and all(report.status(k) == "held" for k in by_name)
    for kind in report.checks:
        if together and kind in BY_NAME_KINDS:
            if kind == by_name[0]:
                lines.append(Text.assemble(("✓ ", "bold green"), (BY_NAME_HELD, "")))
            continue
        found = [g for g in groups if g.kind == kind]
        label = INVARIANTS.get(kind, kind)
        if not found:
            why = dict(report.not_checked).get(kind)
            if report.nothing_frozen and kind in FROZEN_KINDS:
                lines.append(Text.assemble(("- ", "dim"), (f"{label}: nothing frozen, not checked", "dim")))
            elif why is not None:
                lines.append(Text.assemble(("- ", "dim"), (f"{label}: {why}, not checked", "dim")))
            else:
                lines.append(Text.assemble(("✓ ", "bold green"), (label, "")))
            continue
        count = sum(g.count for g in found)
        lines.append(Text.assemble(("✗ ", "bold red"), (label, "bold"), (f"  {count}× {kind}", "red")))
        for group in found:
            lines.append(Padding(Text.assemble((_names(group), "yellow"), (_change(group), "dim"),
                                               (_first_step(report, group), "dim")), (0, 0, 0, 2)))  # fmt: skip
            lines.append(Padding(Text(group.cause), (0, 0, 0, 4)))
            if group.fix:
                what = "all" if group.count > 1 else "it"
                lines.append(Padding(Text.assemble((f"fix {what}: ", "bold"), (group.fix, "cyan")), (0, 0, 0, 4)))
    lines.append(Text(""))
    for caveat in report.caveats:
        lines.append(Text.assemble(("note: ", "bold yellow"), (caveat, "yellow")))
    if report.reference is not None:
        lines.append(Text(f"step: {report.reference.describe()}", style="dim"))
    lines.append(Text(summary_line(report), style="dim"))
    words, style = verdict(report)
    return Panel(Group(*lines), title=f"{words} · {title}", title_align="left", border_style=style)
