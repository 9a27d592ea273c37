"""Rich view of a :class:`~torchscope.StepCheck`: one ✓/✗ line per invariant, each cause once with
its names and the one call that fixes them all, the step that was checked, and what limits the
verdict. No torch import.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.padding import Padding
from rich.text import Text

from torchscope._checkparts.grouping import group_violations
from torchscope._checkparts.report import BY_NAME_KINDS, StepCheck, Violation, ViolationGroup, format_change
from torchscope._format import format_bytes
from torchscope.render._fit import TitledPanel

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


def _first_step(report: StepCheck, group: ViolationGroup) -> str:
    """`` from step 3`` where a guard saw when the group's changes first appeared."""
    names = set(group.names)
    found = [v for v in report.violations if v.kind == group.kind and v.name in names and v.step is not None]
    if not found:
        return ""
    first = min(found, key=lambda v: v.step or 0)
    if first.since_step is not None:
        how = "the full read of a last or explicit check" if first.found_by == "final" else "the rotating sweep"
        return f" between steps {first.since_step + 1} and {first.step} (found by {how})"
    return f" from step {first.step}"


def summary_line(report: StepCheck) -> str:
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


def verdict(report: StepCheck) -> tuple[str, str]:
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


def render_check(report: StepCheck, *, title: str = "check-freeze") -> RenderableType:
    """A panel with a ✓ or ✗ line per invariant checked; under each ✗ every cause once, with its
    names, its count and the one call that fixes them all.

    The verdict leads the title; where the model spec does not fit beside it, the spec moves to the
    panel's first line, whole.
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
    return TitledPanel(lines, words, title, style=style)
def _step_text(v: Violation) -> str | None:
    """``3``, or ``13-20`` where a guard's sweep found the change later than it happened."""
    if v.step is None or v.since_step is None:
        return None if v.step is None else str(v.step)
    return f"{v.since_step + 1}-{v.step}"


def _extra_columns(violations: tuple[Violation, ...]) -> list[str]:
    """The shape and step columns of the plain-text table (header first), where any row has one."""
    cols: list[list[str]] = [[""] for _ in range(len(violations) + 1)]
    for head, values in (("shape", [v.shape for v in violations]), ("step", [_step_text(v) for v in violations])):
        if all(x is None for x in values):
            continue
        texts = [head] + ["-" if x is None else str(x) for x in values]
        width = max(len(t) for t in texts)
        for row, t in zip(cols, texts, strict=True):
            row.append(f"{t:<{width}}")
    return ["  " + "  ".join(r[1:]) if len(r) > 1 else "" for r in cols]


def check_text(report: StepCheck) -> str:
    """The plain-text table of a check: the verdict, what was checked, each violation with its cause.

    It is the report's ``repr()`` and ``str()``; the Rich panel (:func:`render_check`) is the CLI's.
    """
    head = "OK" if report.ok else f"FAILED, {len(report.violations)} violation(s)"
    if report.ok and report.not_checked:
        head += f" ({len(report.not_checked)} of {len(report.checks)} checks had nothing to check)"
    guard = report.guard_step is not None and report.reference is None
    who = f"freeze guard at step {report.guard_step}" if guard else "check_step"
    lines = [
        f"{who} ({report.mode} mode): {head}",
        f"checked {report.frozen_params} frozen and {report.trainable_params} trainable of {report.params} params, "
        f"{report.frozen_buffers} frozen of {report.buffers} buffers ({format_bytes(report.bytes_checked)}); "
        f"snapshot {format_bytes(report.snapshot_bytes)}",
    ]
    if report.reference is not None:
        lines.append(f"step: {report.reference.describe()}")
    lines += [f"note: {c}" for c in report.caveats]
    if report.violations:
        rows = [("kind", "name", "max |change|")]
        rows += [(v.kind, v.name, format_change(v.max_abs_change)) for v in report.violations]
        extra = _extra_columns(report.violations)
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        w2 = max(len(r[2]) for r in rows)
        rows = [(a, b, f"{c:<{w2}}{x}".rstrip()) for (a, b, c), x in zip(rows, extra, strict=True)]
        lines.append("")
        lines.append(f"{rows[0][0]:<{w0}}  {rows[0][1]:<{w1}}  {rows[0][2]}")
        # A cause shared by a run of rows (60 BatchNorm buffers drifting) is printed once,
        # under the run, so the table stays readable.
        run = 0
        fixes = {(g.kind, g.cause): g for g in report.groups if g.fix}
        for i, (row, v) in enumerate(zip(rows[1:], report.violations, strict=True)):
            lines.append(f"{row[0]:<{w0}}  {row[1]:<{w1}}  {row[2]}")
            run += 1
            nxt = report.violations[i + 1] if i + 1 < len(report.violations) else None
            if nxt is None or nxt.cause != v.cause:
                label = "cause" if run == 1 else f"cause (all {run} above)"
                lines.append(f"    {label}: {v.cause}")
                group = fixes.pop((v.kind, v.cause), None)
                if group is not None:
                    lines.append(f"    fix (all {group.count} {group.kind}): {group.fix}")
                run = 0
    if report.not_checked:
        lines.append("")
        lines += [f"not checked: {kind} ({why})" for kind, why in report.not_checked]
    return "\n".join(lines)


