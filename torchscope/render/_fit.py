"""Tables that fit the console: whole numbers, shapes and names, or fewer columns, or one row a block.

A CI log or a pipe is 80 columns; Rich, left alone, squeezes a wide table into it by wrapping every
cell (``[8`` / ``,`` / ``64``), cutting numbers (``-0.0…``) and splitting names (``conv1`` / ``.weig``
/ ``ht``). :func:`fitted` wraps a built :class:`~rich.table.Table` so that, at render time, when the
console is known:

1. every cell is written whole, on one line (``no_wrap``), except the columns named ``wrap`` (prose,
   such as flags, which may wrap between words);
2. if that is wider than the console, the columns named in ``drop`` are left out, first named first,
   until it fits, and a footer line says which were left out;
3. if it still does not fit, each row is written as a block: its first cell, then ``Header: value``
   lines, indented.

Only the renderable changes; the data is untouched, and ``--json`` always has every column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from copy import copy

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text


def fitted(
    table: Table, *, drop: Sequence[str] = (), wrap: Sequence[str] = (), optional: Sequence[str] = ()
) -> FittedTable:
    """``table``, rendered to fit the console (see the module docstring). Columns are named by header.

    ``optional`` columns (a decoration, such as a bar beside the numbers it draws) go first, without
    a footer; then ``drop``, first named first, said in the footer.
    """
    return FittedTable(table, tuple(drop), tuple(wrap), tuple(optional))


class FittedTable:
    """A table that leaves out columns, then stacks its rows, rather than split a cell."""

    def __init__(
        self, table: Table, drop: tuple[str, ...], wrap: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> None:
        headers = [_header(c) for c in table.columns]
        unknown = [h for h in (*wrap, *optional) if h not in headers]
        if unknown:  # a renderer's mistake, caught by its tests
            raise ValueError(f"no column {unknown!r} in {headers!r}")
        self.table = table
        self.drop = tuple(h for h in drop if h in headers)  # a column a renderer adds only sometimes
        self.wrap = wrap
        self.optional = optional

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        left_out: list[str] = []
        candidate = self._subset(left_out)
        queue = [*self.optional, *self.drop]
        while self._needed(console, options, candidate) > width and queue:
            left_out.append(queue.pop(0))
            candidate = self._subset(left_out)
        said = [h or "bar" for h in left_out if h not in self.optional]
        if self._needed(console, options, candidate) > width:
            yield from self._stacked(console, options)
            return
        yield candidate
        if said:
            yield Text(
                f"left out at {width} columns: {', '.join(said)} (in --json)",
                style="dim",
            )

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def _subset(self, left_out: Iterable[str]) -> Table:
        """A copy of the table without the columns ``left_out``; every other cell kept whole."""
        out = set(left_out)
        src = self.table
        table = copy(src)
        table.columns = []
        table.rows = list(src.rows)
        for column in src.columns:
            header = _header(column)
            if header in out:
                continue
            new = copy(column)
            new._cells = list(column._cells)
            new._index = len(table.columns)  # Rich pads the first and last column by their index
            if header not in self.wrap:
                new.no_wrap = True
                new.overflow = "fold"  # never reached: the table is only shown when every cell fits
                new.max_width = None
            table.columns.append(new)
        return table

    def _needed(self, console: Console, options: ConsoleOptions, table: Table) -> int:
        """The width ``table`` needs with every no-wrap cell whole and wrapping cells at their longest word."""
        wide = options.update(width=10_000, max_width=10_000)
        total = Measurement.get(console, wide, table).maximum  # Rich's own sum: cells, padding, box
        for column in table.columns:
            if _header(column) in self.wrap:
                measures = [Measurement.get(console, wide, c) for c in [column.header, *column._cells]]
                total -= max(m.maximum for m in measures) - max(m.minimum for m in measures)
        return total

    def _stacked(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """One block a row: the first cell, then each other cell as ``Header: value``."""
        columns = self.table.columns
        headers = [_header(c) for c in columns]
        rows = len(columns[0]._cells) if columns else 0
        blocks: list[Text] = []
        for r in range(rows):
            first = _plain(columns[0]._cells[r])
            block = Text(first, style="bold", no_wrap=True, overflow="ignore")
            for header, column in zip(headers[1:], columns[1:], strict=True):
                value = _plain(column._cells[r])
                if value:
                    block.append(f"\n  {header or '·'}: {value}")
            blocks.append(block)
        yield Group(*blocks)
        yield Text(f"one row a block to fit {options.max_width} columns (a wider terminal shows the table)", style="dim")


def _header(column: Column) -> str:
    header = column.header
    return header.plain if isinstance(header, Text) else str(header)


def _plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


__all__ = ["FittedTable", "fitted"]


class TitledPanel:
    """A panel titled ``head + sep + title`` when that fits the console; else titled ``head`` alone,
    with ``title`` (a model spec, a path: never cut) as the body's first line, folded if it must be."""

    def __init__(
        self, body: Sequence[RenderableType], head: str, title: str, *, sep: str = " · ", style: str = "", expand: bool = True
    ) -> None:
        self.body, self.head, self.title, self.sep, self.style, self.expand = list(body), head, title, sep, style, expand

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.cells import cell_len
        from rich.panel import Panel

        full = f"{self.head}{self.sep}{self.title}"
        if cell_len(full) + 6 <= options.max_width:  # the corners, the rule and the title's spaces
            yield Panel(Group(*self.body), title=full, title_align="left", border_style=self.style, expand=self.expand)
        else:
            body = Group(Text(self.title, style="bold", overflow="fold"), *self.body)
            yield Panel(body, title=self.head, title_align="left", border_style=self.style, expand=self.expand)
