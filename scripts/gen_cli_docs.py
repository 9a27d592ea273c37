#!/usr/bin/env python
"""Write docs/cli.md from the Typer app, so the CLI reference cannot drift from the code.

    python scripts/gen_cli_docs.py          # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is out of date

tests/test_docs.py runs the check.
"""

from __future__ import annotations

import enum
import sys
import typing
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "cli.md"


def _cell(text: str) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


# Typer ships its own copy of click (typer._click), so parameters are told apart by duck typing.
def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "argument"


def _default(param: Any) -> str:
    default: Any = param.default
    if default is None or callable(default) or (_is_option(param) and param.is_flag and not default):
        return ""
    if isinstance(default, list | tuple):
        if not default:
            return ""
        default = ", ".join(str(d) for d in default)
    return f"`{default}`"


_TYPE_NAMES = {int: "integer", float: "float", str: "text", bool: "boolean", Path: "path"}


def _annotation_name(annotation: Any) -> str:
    """A short type name from a Python annotation: ``Path | None`` -> path, ``list[str]`` -> text..."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (list, tuple):
        inner = " ".join(dict.fromkeys(_annotation_name(a) for a in args if a is not Ellipsis))
        return f"{inner} (repeatable)" if origin is list else inner
    if args and origin is not None:
        return " \\| ".join(dict.fromkeys(_annotation_name(a) for a in args))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)).lower())


def _type(param: Any) -> str:
    if _is_option(param) and param.is_flag:
        return "flag"
    click_type = getattr(param, "type", None)
    if click_type is not None:  # plain click parameters
        choices = getattr(click_type, "choices", None)
        return " \\| ".join(f"`{c}`" for c in choices) if choices else click_type.name.lower()
    descriptor = getattr(param, "type_descriptor", None)
    return _annotation_name(descriptor.annotation) if descriptor is not None else ""


def _option_names(param: Any) -> str:
    names = [*param.opts, *param.secondary_opts]
    return ", ".join(f"`{n}`" for n in names)


def command_markdown(name: str, command: Any) -> list[str]:
    """The section of one command: usage, description, arguments, options."""
    lines = [f"## `torchscope {name}`", ""]
    help_text = (command.help or "").strip()
    if help_text:
        lines += [help_text.split("\f")[0].strip(), ""]
    pieces = ["[OPTIONS]"] if any(_is_option(p) for p in command.params) else []
    for p in command.params:
        if _is_argument(p):
            arg = (p.name or "").upper() + ("..." if p.nargs == -1 else "")
            pieces.append(arg if p.required else f"[{arg}]")
    usage = " ".join(pieces)
    lines += ["```", f"torchscope {name} {usage}".rstrip(), "```", ""]
    arguments = [p for p in command.params if _is_argument(p)]
    options = [p for p in command.params if _is_option(p) and not p.hidden]
    if arguments:
        lines += ["| argument | help |", "| --- | --- |"]
        for p in arguments:
            required = "" if p.required else " (optional)"
            lines.append(
                f"| `{(p.name or '').upper()}`{required} | {_cell(getattr(p, 'help', None) or '')} |"
            )
        lines.append("")
    if options:
        lines += ["| option | type | default | help |", "| --- | --- | --- | --- |"]
        for p in options:
            lines.append(f"| {_option_names(p)} | {_type(p)} | {_default(p)} | {_cell(p.help or '')} |")
        lines.append("")
    return lines


COMMON = """\
An option that several commands take has one name and one meaning in all of them (declared once, in
`torchscope/cli/_options.py`); only its default may differ, and each command's table shows it.

- `--input-size SHAPE`: `1,3,224,224` or `1x3x224x224`; several inputs separated by `;` or spaces
  (`1,3,8,8;1,10`). Leave the option out for the model's own default; an empty value is an error.
  Inputs that alone need more memory than the device has are refused before anything is allocated.
  Every command that runs a forward pass (`summary`, `activations`, `grads`, `check-freeze`, `report`,
  `memory`, `bench`) takes it (or its other name `--tokens`) and `--dtype` (or `--input-dtype`):
  `--input-size 2,8 --dtype long` feeds an embedding model token ids.
- `--seed N` (default 0): every command that draws random weights or inputs (the same seven, and
  `stats`) seeds torch, `random` and NumPy with it before the model is built, so two runs print the
  same numbers.
- `--freeze`, `--unfreeze`, `--modules`: comma-separated globs; `''`, `','` and empty items are errors.
- `--json`: the collected data as JSON on stdout, and nothing else: whatever the model prints (at import
  or in forward, from Python or from C through file descriptor 1, also from a thread of its own) goes
  to stderr, and a thread the model started does not keep the command running after its answer. JSON
  is valid RFC 8259 in every command: a NaN or infinite number is written as the string `"NaN"`,
  `"Infinity"` or `"-Infinity"` (Python's `float()` reads them back).
- `--console-html FILE`, `--svg FILE`: a copy of what the command prints, from the same data (no re-run).
  `report --page FILE` writes report's charted page.
- `--batch-size N` (`memory`, `bench`): samples per step; `--input-size` is then one sample's shape
  (`3,224,224`, or a language model's `LENGTH`), as it is with `memory --fit`. Without it,
  `--input-size` is the whole batch's shape, as in every other command.
- `--optimizer sgd` is SGD with `--momentum` (default 0.9; `--momentum 0` for plain SGD) in every
  command; `bench` runs its two fixed recipes (sgd with momentum 0.9, adamw).
- `--progress/--no-progress`: long work (`bench`, `report`, `memory --fit`'s search, `bench --batch-size
  auto`'s search) shows a bar per phase with the time spent and an estimate of the time left, on stderr;
  never under `--json` or when stderr is not a terminal. Library calls show no progress unless given a
  `progress(phase, done, total)` callback.

Output files are never a half or a partial set: every output path is checked before any work starts
and again right before writing, everything is rendered before anything is written, and each file is
written to a temporary file beside it and renamed. An output is never one of the command's inputs, not
even with `--force`: the model's file, `--weights`, every file of an `hf:DIR`, and every file the
command read while it ran (a module the model's file imports, a `config.json`, a shard, a vocabulary
the model opens), also through a symbolic or hard link. Only a regular file is written: a FIFO, a
device (`/dev/full`) or a socket is refused. An existing file is overwritten only if torchscope wrote
it (it carries `generated by torchscope` in its first lines) or with `--force`, and keeps its mode; a
new file gets your umask, as any file you create.

A usage error (an unknown option, a missing argument, a value of the wrong type) is one line on
stderr, `error: ...; see 'torchscope COMMAND --help'`, exit 2, as every other bad input.

Sizes, counts and shapes read the same in every command, table and message (one formatter each, in
`torchscope/_format.py`; counts are exact, `11,689,512`, or short with an SI prefix, `11.7 M`). Bytes are binary: `512 B`, `1.5 KiB`, `44.6 MiB`, `14.9 GiB` (powers of 1024,
one decimal), because `torch.cuda`'s memory statistics, CUDA's out-of-memory message and `nvidia-smi`
count that way and a decimal `MB` would be 5-7 % off the figure it is compared with (`--fit` still
reads `40GB` as decimal). Shapes are written as torch and torchinfo write them, `[1, 3, 224, 224]`
(`[]` for a 0-d tensor).

**Every width.** A number, a shape and a name are never split or cut. A table wider than the terminal
(80 columns in a pipe or a CI log) leaves columns out, least useful first, and says which in a footer
line (`left out at 80 columns: Min, Max (in --json)`); if even its first columns do not fit, it
writes one row a block (`name`, then `  Header: value` lines). `--json` always has every column.
Tested on every table at 60, 80 and 200 columns (`tests/test_widths.py`).

""".splitlines()


def exit_code_table() -> list[str]:
    """The exit codes, from the one table in torchscope.cli._exit."""
    from torchscope.cli._exit import MEANING

    lines = [
        "## Exit codes",
        "",
        "Every command, under one contract:",
        "",
        "| code | meaning |",
        "| --- | --- |",
    ]
    lines += [f"| {int(code)} | {_cell(text)} |" for code, text in MEANING.items()]
    return [*lines, ""]


def flag_tables() -> list[str]:
    """The renamed options and the documented per-command differences, from torchscope.cli._renames."""
    from torchscope.cli._renames import EXCEPTIONS, RENAMED

    lines = [
        "## One meaning per flag",
        "",
        "Where a command used a name for something else, the option was renamed. The old spelling still",
        "works for one release, with one line on stderr (`warning: ... is deprecated`):",
        "",
        "| old | new | in | why |",
        "| --- | --- | --- | --- |",
    ]
    for r in RENAMED:
        where = ", ".join(f"`{c}`" for c in r.commands) or "every other command"
        lines.append(f"| `{r.old}` | `{r.new}` | {where} | {_cell(r.why)} |")
    lines += [
        "",
        "`memory --optimizer sgd-momentum` is now `--optimizer sgd` (momentum 0.9 unless `--momentum 0`).",
        "",
        "An option has one help text, value name and default in every command, but for these:",
        "",
        "| option | differs in | why |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{opt}` | {what} | {_cell(why)} |" for (opt, what), why in EXCEPTIONS.items()]
    return [*lines, ""]


def render() -> str:
    """The whole of docs/cli.md."""
    from torchscope.cli import app

    group: Any = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "<!-- Generated by scripts/gen_cli_docs.py from the Typer app; do not edit by hand. -->",
        "",
        (group.help or "").strip(),
        "",
        *COMMON,
        *exit_code_table(),
        *flag_tables(),
    ]
    if hasattr(group, "list_commands"):
        ctx = group.context_class(group, info_name="torchscope")
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            lines += command_markdown(name, command)
    else:  # a Typer app with a single command is that command
        lines += command_markdown(group.name or "", group)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(
                f"{TARGET.relative_to(ROOT)} is out of date; run: python scripts/gen_cli_docs.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
