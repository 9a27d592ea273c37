"""How every result shows itself: its plain-text table (``repr``) and its HTML (notebook cells).

Dispatches on the result's schema name (``torchscope.summary``), so a result read back from JSON
shows the same as the one a function returned. The text is the terminal renderer's table printed
without colour, with the exact counts; the HTML is the ``report`` page's section of that result
(:mod:`torchscope.render.sections`). Installed into :mod:`torchscope._display` by
``torchscope.render`` (see CONTRIBUTING.md: how a result reaches its renderer). No torch.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console, RenderableType

from torchscope.render import sections

#: Columns of the plain-text display: wide enough that no name, shape or number is cut.
TEXT_WIDTH = 120


def plain(renderable: RenderableType, width: int = TEXT_WIDTH) -> str:
    """A Rich renderable as plain text (no colour, no terminal codes), trailing spaces trimmed."""
    buffer = io.StringIO()
    # force_jupyter=False: inside a kernel Rich would otherwise display the table itself
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, force_jupyter=False,
                      highlight=False, emoji=False, soft_wrap=False)  # fmt: skip
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


def _exact(pairs: list[tuple[str, int]]) -> str:
    return "\n".join(f"{k}: {v:,}" for k, v in pairs)


def _summary_text(r: Any) -> str:
    from torchscope.render.summary import summary_text

    return summary_text(r)


def _tree_text(r: Any) -> str:
    from torchscope.render.tree import render_tree

    return plain(render_tree(r)) + "\n" + _exact(
        [("Total params", r.total_params), ("Trainable params", r.trainable_params),
         ("Non-trainable params", r.frozen_params)]
    )  # fmt: skip


def _check_text(r: Any) -> str:
    from torchscope.render.check import check_text

    return check_text(r)


def _activations_text(r: Any) -> str:
    from torchscope.render.activations import render_activations

    return plain(render_activations(r)) + f"\nOutputs checked: {r.checked:,} of {len(r.calls):,}; flags: {len(r.flags)}"


def _grads_text(r: Any) -> str:
    from torchscope.render.stats import render_grads

    return plain(render_grads(r)) + "\n" + _exact([("Trainable params", r.trainable), ("Non-trainable params", r.frozen)])


def _stats_text(r: Any) -> str:
    from torchscope.render.stats import render_param_stats

    return plain(render_param_stats(r)) + "\n" + _exact(
        [("Total params", r.total), ("Trainable params", r.trainable), ("Non-trainable params", r.frozen)]
    )


def _diff_text(r: Any) -> str:
    from torchscope.render.diff import render_diff

    counts = ", ".join(f"{k} {v:,}" for k, v in r.counts.items())
    return plain(render_diff(r)) + f"\nTensors: {counts}"


def _memory_text(r: Any) -> str:
    from torchscope.render.memory import render_memory

    return plain(render_memory(r)) + f"\nPeak: {r.peak:,} bytes"


def _bench_text(r: Any) -> str:
    from torchscope.render.bench import render_bench

    return plain(render_bench(r))


def _report_text(r: Any) -> str:
    from torchscope.render.html import render_report_terminal

    return plain(render_report_terminal(r)) + "\n" + _exact(
        [("Total params", r.total_params), ("Trainable params", r.trainable_params),
         ("Non-trainable params", r.frozen_params)]
    )  # fmt: skip


def _report_html(r: Any) -> str:
    from torchscope.render.html import report_sections

    return "".join(report_sections(r))


#: schema name -> (plain text, HTML body)
RENDERERS: dict[str, tuple[Callable[[Any], str], Callable[[Any], str]]] = {
    "torchscope.summary": (_summary_text, sections.summary_html),
    "torchscope.tree": (_tree_text, sections.tree_html),
    "torchscope.check": (_check_text, sections.check_html),
    "torchscope.activations": (_activations_text, sections.activations_html),
    "torchscope.grads": (_grads_text, sections.grads_html),
    "torchscope.stats": (_stats_text, sections.stats_html),
    "torchscope.diff": (_diff_text, sections.diff_html),
    "torchscope.memory": (_memory_text, sections.memory_html),
    "torchscope.bench": (_bench_text, sections.bench_html),
    "torchscope.report": (_report_text, _report_html),
}


def _scalars(d: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
            for k, v in d.items() if k != "schema" and not isinstance(v, dict | list)]  # fmt: skip


def _rows(d: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(k, v) for k, v in d.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]


def generic_text(result: Any) -> str:
    """A result with no renderer of its own: its scalar fields, then each list of records as a table."""
    from rich.table import Table

    d = result.to_dict()
    lines = [f"{type(result).__name__} ({d.get('schema', '')})", *(f"{k}: {v}" for k, v in _scalars(d))]
    out = "\n".join(lines)
    for key, rows in _rows(d):
        table = Table(title=key, title_justify="left", box=None)
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*(str(row.get(c, "")) for c in rows[0]))
        out += "\n" + plain(table)
    return out


def generic_html(result: Any) -> str:
    """The HTML of a result with no section of its own: the same scalars and tables, escaped."""
    from html import escape

    d = result.to_dict()
    body = f"<h3>{escape(type(result).__name__)}</h3>" + sections.totals(_scalars(d))
    for key, rows in _rows(d):
        columns = list(rows[0])
        body += f"<p class=\"sub\">{escape(key)}</p>" + sections.table(
            [(c, False) for c in columns], [([escape(str(r.get(c, ""))) for c in columns], "") for r in rows], empty=""
        )
    return body


def _renderers(result: Any) -> tuple[Callable[[Any], str], Callable[[Any], str]]:
    # a result without a renderer of its own (a new one, before it gets a section) still shows its data
    name = str(getattr(result, "SCHEMA", "")).partition("/")[0]
    return RENDERERS.get(name, (generic_text, generic_html))


def text(result: Any) -> str:
    """The plain-text table of ``result``."""
    return _renderers(result)[0](result)


def echo(result: Any) -> None:
    """Print ``result`` to the terminal: its Rich table where it has one (colours), else its text."""
    name = str(getattr(result, "SCHEMA", "")).partition("/")[0]
    if name == "torchscope.summary" and sys.stdout is not None and sys.stdout.isatty():
        from torchscope.render.summary import render_summary

        # force_jupyter=False: in a kernel Rich would publish its own display of the table
        Console(force_jupyter=False).print(render_summary(result))
    else:
        print(text(result))  # a pipe, a log, a notebook's stream: the text at its natural width


def html(result: Any) -> str:
    """The HTML of ``result`` for a notebook cell: the scoped style and its section."""
    return sections.fragment(_renderers(result)[1](result))
