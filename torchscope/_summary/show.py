"""torchinfo's ``verbose`` rule at the public edge, with the table shown once in IPython.

``verbose=None``: print when not interactive (``sys.ps1`` unset: a script, pytest), stay quiet when
interactive (the REPL or notebook shows the returned object). ``verbose=1`` or ``2`` prints.
In IPython (a notebook, the IPython shell) the cell's value is displayed too: when the cell ends
in an expression, the table is printed after the cell unless that expression displayed this very
summary, so it shows once (torchinfo shows it twice there).
"""

from __future__ import annotations

import ast
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchscope._summary.data import Summary

_PENDING: list[Summary] = []
_REGISTERED: set[int] = set()  # ids of the IPython shells our post_run_cell callback is on


def wants_print(verbose: int | None) -> bool:
    """torchinfo's rule: ``verbose=None`` prints unless interactive; 0 never, 1 and 2 always."""
    if verbose is None:
        return not getattr(sys, "ps1", None)
    return verbose > 0


def show(result: Summary, verbose: int | None) -> None:
    """Print ``result``'s table when ``verbose`` asks for it (see the module docstring)."""
    if not wants_print(verbose):
        return
    shell = _ipython()
    if shell is not None and _ends_in_expression(shell):
        _defer(shell, result)
    else:
        print_table(result)


def print_table(result: Summary) -> None:
    """The table on stdout: fitted to a terminal, at its natural width (``str()``'s text) elsewhere.
    Through the display boundary: the core never imports the renderers."""
    from torchscope import _display

    _display.echo(result)


def _ipython() -> Any:
    # never import IPython: only a session that runs it has it loaded
    module = sys.modules.get("IPython")
    get = getattr(module, "get_ipython", None)
    return get() if callable(get) else None


def _ends_in_expression(shell: Any) -> bool:
    # the cell being run is the last input in the history; an expression at its end is displayed
    history = getattr(shell, "user_ns", {}).get("_ih") or [""]
    source = str(history[-1])
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return True
    return bool(body) and isinstance(body[-1], ast.Expr) and not source.rstrip().endswith(";")


def _defer(shell: Any, result: Summary) -> None:
    _PENDING.append(result)
    if id(shell) not in _REGISTERED:
        shell.events.register("post_run_cell", _after_cell)
        _REGISTERED.add(id(shell))


def _after_cell(info: Any = None) -> None:
    # info: IPython's ExecutionResult; .result is what the cell displayed as its value
    shown = getattr(info, "result", None)
    pending = list(_PENDING)
    _PENDING.clear()
    for result in pending:
        if result is not shown:
            print_table(result)


__all__ = ["print_table", "show", "wants_print"]
