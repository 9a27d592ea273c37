"""Old spellings of renamed options: they keep working for one release, with one line on stderr.

Each flag of the CLI has one meaning in every command; where a command used a name for something
else, the option was renamed and the old spelling is rewritten here, before Typer parses the
command line, so no old name appears in ``--help`` and none needs a parameter of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

__all__ = ["EXCEPTIONS", "RENAMED", "RenameClash", "Renamed", "deprecation_line", "rewrite_renamed"]


class RenameClash(ValueError):
    """An option given in both its old and its new spelling."""


@dataclass(frozen=True)
class Renamed:
    """``old`` is now ``new`` in ``commands`` (every command that has ``new`` when empty)."""

    old: str
    new: str
    commands: tuple[str, ...] = ()
    why: str = ""


RENAMED: tuple[Renamed, ...] = (
    Renamed("--html", "--page", ("report",), "the charted page"),
    Renamed("--html", "--console-html", (), "the console output saved as HTML"),
    Renamed("--mode", "--finetune", ("bench",), "--mode is train or eval everywhere else"),
    Renamed("--steps", "--window-steps", ("bench",), "--steps is the training steps to run everywhere else"),
    Renamed("--strict", "--require-speed", ("bench",), "--strict meant another check in each command"),
    Renamed("--strict", "--require-exact", ("summary",), "--strict meant another check in each command"),
    Renamed("--expand", "--unchanged", ("diff",), "--expand is tree's: do not collapse repeated blocks"),
)
"""Every renamed option, for the CHANGELOG and for :func:`rewrite_renamed`."""


EXCEPTIONS: dict[tuple[str, str], str] = {
    ("--device", "default"): "each command runs where it can: meta (structure only), cpu (values), "
    "cuda (memory predicts for it), auto (bench: the best device there is)",
    ("--mode", "default"): "eval for the commands that look (summary, activations), train for those that "
    "backpropagate (grads, memory)",
    ("--optimizer", "default"): "memory predicts the usual fine-tune, AdamW; the checks run SGD",
    ("--optimizer", "help"): "bench runs two reference recipes with fixed hyperparameters",
    ("--lr", "help"): "bench: the recipe's own learning rate unless given",
    ("--lr", "default"): "bench: the recipe's own learning rate unless given",
    ("--steps", "default"): "memory predicts two steps: the optimizer state exists from the second",
    ("--batch-size", "help"): "bench also takes auto, the largest batch that fits",
    ("--batch-size", "metavar"): "bench also takes auto, the largest batch that fits",
}
"""(option, help/metavar/default) that differs between commands, and why: the same meaning, another
default or a narrower choice, said in that command's help. A test keeps this list exact."""


def deprecation_line(rename: Renamed) -> str:
    """The one line on stderr when ``rename.old`` is used."""
    why = f" ({rename.why})" if rename.why else ""
    return f"warning: `{rename.old}` is deprecated and goes in the next release; write `{rename.new}`{why}"


def renames_of(command: str, options: Collection[str]) -> dict[str, Renamed]:
    """The old spellings that ``command`` (whose option names are ``options``) still takes."""
    found: dict[str, Renamed] = {}
    for rename in RENAMED:
        applies = command in rename.commands if rename.commands else True
        if applies and rename.new in options and rename.old not in options and rename.old not in found:
            found[rename.old] = rename
    return found


def rewrite_renamed(
    command: str, options: Collection[str], args: Sequence[str], warn: Callable[[str], None]
) -> list[str]:
    """``args`` with every old spelling (``--old`` and ``--old=VALUE``) of ``command``'s renamed options
    written new, calling ``warn`` once per old spelling used; nothing after ``--`` is touched.

    >>> rewrite_renamed("bench", {"--finetune"}, ["--mode=full", "--", "--mode"], print)
    warning: `--mode` is deprecated and goes in the next release; write `--finetune` (--mode is train or eval everywhere else)
    ['--finetune=full', '--', '--mode']
    """
    renames = renames_of(command, options)
    if not renames:
        return list(args)
    given = {a.partition("=")[0] for a in args[: args.index("--") if "--" in args else len(args)]}
    for old, rename in renames.items():
        if old in given and rename.new in given:
            raise RenameClash(f"{old} is the old spelling of {rename.new}; give {rename.new} only")
    out: list[str] = []
    warned: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        renamed = renames.get(name)
        if renamed is not None:
            if name not in warned:
                warn(deprecation_line(renamed))
                warned.add(name)
            arg = f"{renamed.new}{eq}{value}"
        out.append(arg)
    return out
