"""Run ``examples/notebook.ipynb`` in a real Jupyter kernel and write its real outputs to ``docs/notebook.md``.

The page shows each cell's code, the ``text/plain`` a console would show and the ``text/html`` the
notebook shows, so the docs cannot drift from what the notebook does. ``--check`` fails (exit 1) when
the page differs from a fresh run; ``tests/test_notebook.py`` runs the same comparison on the run it
asserts on.

    python scripts/gen_notebook_docs.py          # rewrite docs/notebook.md
    python scripts/gen_notebook_docs.py --check  # CI: is it up to date?

Needs the test extra (nbclient, ipykernel, nbformat). About half a minute on a CPU.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
PAGE = ROOT / "docs" / "notebook.md"

HEADER = """# torchscope in a notebook

Every result shows itself in Jupyter: the last expression of a cell is displayed once, as an HTML table
(readable in light and dark themes, the module tree folded below its first level, charts as inline
SVG, no JavaScript, nothing fetched), and `repr()` in a console is the same table as plain text, with
exact counts. The notebook is `examples/notebook.ipynb` in the repository;
the outputs below are its real outputs, written by `scripts/gen_notebook_docs.py` from a run in a
Jupyter kernel (the test suite checks that they are up to date). Each cell shows what a console prints
(`text/plain`), then what the notebook shows (`text/html`).
"""


def execute(path: Path = NOTEBOOK, timeout: int = 600) -> Any:
    """The notebook, executed in a fresh ``python3`` kernel started in the repository root."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    return nb


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def render(nb: Any) -> str:
    """``docs/notebook.md`` for an executed notebook."""
    parts = [HEADER]
    for cell in nb.cells:
        source = _text(cell.source).strip()
        if cell.cell_type == "markdown":
            if source.startswith("# "):
                continue  # the notebook's title: the page has its own
            parts.append(source)
            continue
        parts.append(f"```python\n{source}\n```")
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(f"Printed ({out.name}):\n\n```text\n{_text(out.text).rstrip()}\n```")
            elif out.output_type in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "text/plain" in data:
                    parts.append(f"```text\n{_text(data['text/plain']).rstrip()}\n```")
                if "text/html" in data:
                    # one raw HTML block: no blank line inside, or Markdown would end it there
                    html = " ".join(line for line in _text(data["text/html"]).splitlines() if line.strip())
                    parts.append(html)
            elif out.output_type == "error":
                raise RuntimeError(f"the notebook raised {out.ename}: {out.evalue}")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if docs/notebook.md is out of date")
    ns = parser.parse_args(argv)
    page = render(execute())
    if ns.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != page:
            diff = difflib.unified_diff(current.splitlines(), page.splitlines(), "docs/notebook.md", "fresh run", lineterm="")
            print("\n".join(list(diff)[:40]))
            print("docs/notebook.md is out of date: run python scripts/gen_notebook_docs.py")
            return 1
        print("docs/notebook.md is up to date")
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
