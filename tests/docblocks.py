"""Run the code blocks of README.md and docs/*.md and compare them with what they show.

Every fenced block of a page is one of these (the line before the fence may carry a marker, an
HTML comment that neither GitHub nor mkdocs shows):

- ```` ```console ````: ``$ torchscope ARGS`` (or ``$ echo $?``) lines, each followed by the output it prints. Each
  command runs in-process (Typer's runner, ``COLUMNS=100``, in the page's own temporary folder)
  and its output (stdout and stderr, as a terminal shows them) must equal the lines below it.
- ```` ```python ````: run in order, one namespace per page. A ``test_*`` function it defines is
  called; each argument is built fresh by ``fixtures[NAME]()`` when a hidden ``setup`` block
  defined that dict of functions, else it is the namespace's value of that name.
- ``<!-- docs-test: pytest -->`` before a python block: a test file of its own; it is saved as
  ``test_snippet.py`` and run by pytest in a new interpreter, which must pass.
- ```` ```pycon ````: a doctest, run in the page's namespace.
- ```` ```bash ````: ``torchscope ...`` lines only (or ``python -m torchscope``, ``torchrun ... -m
  torchscope``; comments allowed); each must parse against the
  CLI (the command and every option exist, values convert); it does not run.
- ``<!-- docs-test: output -->`` before a block: the expected output of the python block above it
  (what it prints, then ``Type: message`` of what its test function raised).
- ``<!-- docs-test: skip REASON -->`` before a block: it does not run; REASON says why (needs a
  download, a GPU, a file the docs cannot build, or it is not code: a schema, an excerpt).
- ``<!-- docs-test: setup ... -->``: python code inside the comment, run at that place of the page
  (fixtures for the examples, checkpoint files for the commands), not shown to readers; the name
  ``docs_root`` is the repository's root there.

Any other block fails the test, so a new block is run or says why not. Output comparison, after
dropping trailing spaces and trailing blank lines, is exact except: ``...`` on a line of its own
matches any number of lines, ``...`` within a line matches any text, and the page's temporary
folder reads as ``.``.

``python tests/docblocks.py`` prints, for each page, how many blocks of each kind it has.
"""

from __future__ import annotations

import contextlib
import doctest
import inspect
import io
import os
import re
import shlex
import sys
import textwrap
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Pages generated from real runs by a script whose --check the suite runs, so they cannot drift either:
# docs/cli.md (scripts/gen_cli_docs.py, tests/test_docs.py), docs/guard.md (scripts/gen_guard_docs.py,
# tests/test_guard.py), docs/notebook.md (scripts/gen_notebook_docs.py, tests/test_notebook.py)
GENERATED = ("cli.md", "guard.md", "notebook.md")
# benchmarks/RESULTS.md is the text of docs/benchmarks.md (which only includes it), so its blocks are held to the same rule
PAGES = ["README.md", "benchmarks/RESULTS.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md") if p.name not in GENERATED)]
COLUMNS = 100

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<lang>[\w-]*)[^`]*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>\w+)\s*(?P<rest>.*?)\s*(?P<end>-->)?\s*$")
KINDS = ("console", "python", "pycon", "bash", "output", "skip", "setup", "pytest")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence (of the comment, for setup)
    lang: str
    code: str
    kind: str  # one of KINDS, or "unmarked"
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse(page: str, text: str | None = None) -> list[Block]:
    """The blocks of ``page`` in order, each with its kind (see the module docstring)."""
    lines = (text if text is not None else (ROOT / page).read_text(encoding="utf-8")).splitlines()
    blocks: list[Block] = []
    marker: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _MARKER.match(line)
        if m:
            kind, rest = m.group("kind"), m.group("rest")
            if kind == "setup":
                j = i
                body: list[str] = []
                if m.group("end") is None:
                    j = i + 1
                    while lines[j].strip() != "-->":
                        body.append(lines[j])
                        j += 1
                blocks.append(Block(page, i + 1, "python", textwrap.dedent("\n".join(body)), "setup"))
                i = j + 1
                continue
            marker = (kind, rest)
            i += 1
            continue
        f = _FENCE.match(line)
        if f:
            indent, ticks = f.group("indent"), f.group("ticks")
            j = i + 1
            while not re.match(rf"^\s*{ticks}\s*$", lines[j]):
                j += 1
            body = [ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1 : j]]
            lang = f.group("lang")
            kind, reason = marker if marker else (lang if lang in ("console", "python", "pycon", "bash") else "unmarked", "")
            blocks.append(Block(page, i + 1, lang, "\n".join(body), kind, reason))
            marker = None
            i = j + 1
            continue
        if line.strip():
            marker = None  # a marker belongs to the block right below it
        i += 1
    return blocks


def normalise(text: str, cwd: str = "") -> list[str]:
    if cwd:
        text = text.replace(cwd + os.sep, "").replace(cwd, ".")
    out = [ln.rstrip() for ln in text.splitlines()]
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def _line_matches(expected: str, actual: str) -> bool:
    if "..." not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` equals ``actual``, with ``...`` lines and in-line ``...`` as wildcards."""
    if not expected:
        return not actual
    head = expected[0]
    if head.strip() == "...":
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and _line_matches(head, actual[0]) and matches(expected[1:], actual[1:])


def diff(expected: list[str], actual: list[str]) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(expected, actual, "docs", "real", lineterm="", n=2))


def console_commands(code: str) -> list[tuple[str, list[str]]]:
    """``(command line, expected output lines)`` for each ``$ `` line of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            out.append((line[2:].strip(), []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"output before the first '$ ' line: {line!r}")
    return out


def torchscope_args(command: str) -> list[str]:
    """The argument list of ``torchscope ARGS  # comment``."""
    words = shlex.split(command, comments=True)
    if "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["torchscope"]:
        words = words[words.index("-m") + 1 :]  # python -m torchscope ..., torchrun ... -m torchscope ...
    if not words or words[0] != "torchscope":
        raise ValueError(f"not a torchscope command: {command!r}")
    return words[1:]


@dataclass
class Page:
    """Runs the blocks of one page, in order, in one namespace and one working folder."""

    name: str
    cwd: Path
    ns: dict[str, Any] = field(default_factory=dict)
    last_output: str | None = None
    # a python block whose test function failed: only an output block right below may expect that
    failed: tuple[Block, str] | None = None
    failures: list[str] = field(default_factory=list)
    ran: Counter[str] = field(default_factory=Counter)
    # (block, what it would show if it were true to a real run): for ``--update``
    updates: list[tuple[Block, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ns.setdefault("__name__", "__docs__")
        self.ns.setdefault("docs_root", ROOT)  # for setup blocks: the repository's own files

    def fail(self, block: Block, message: str) -> None:
        self.failures.append(f"{block.where} ({block.kind}): {message}")

    def run(self, block: Block) -> None:
        handler = getattr(self, f"_run_{block.kind}", None)
        if handler is None:
            self.fail(block, f"unmarked ```{block.lang} block: make it console/python/pycon/bash, or put "
                      "'<!-- docs-test: output -->' or '<!-- docs-test: skip REASON -->' above it")
            return
        if self.failed is not None and block.kind != "output":
            self.fail(self.failed[0], "its test function failed:\n" + self.failed[1])
            self.failed = None
        handler(block)
        if block.kind != "python":
            self.last_output = None

    def finish(self) -> None:
        if self.failed is not None:
            self.fail(self.failed[0], "its test function failed:\n" + self.failed[1])

    def _run_skip(self, block: Block) -> None:
        if not block.reason:
            self.fail(block, "a skip says why: <!-- docs-test: skip REASON -->")
        self.ran["skipped"] += 1

    def _exec(self, block: Block) -> tuple[str, bool]:
        buffer = io.StringIO()
        failed = False
        code = compile(block.code, block.where, "exec")
        before = set(self.ns)
        with contextlib.redirect_stdout(buffer):
            exec(code, self.ns)
            for name in [n for n in self.ns if n not in before and n.startswith("test_")]:
                function = self.ns[name]
                cache: dict[str, Any] = {}
                args = [self._argument(p, cache, name) for p in inspect.signature(function).parameters]
                try:
                    function(*args)
                except AssertionError as error:
                    print(f"AssertionError: {error}")
                    failed = True
        return buffer.getvalue(), failed

    def _argument(self, name: str, cache: dict[str, Any], test: str) -> Any:
        """A test function's argument: built fresh for each test by ``fixtures[name]`` (a dict of
        functions a setup block defines; their own arguments resolve the same way), else the
        namespace's value of that name."""
        if name in cache:
            return cache[name]
        fixtures = self.ns.get("fixtures", {})
        if name in fixtures:
            make = fixtures[name]
            value = make(*(self._argument(p, cache, test) for p in inspect.signature(make).parameters))
        elif name in self.ns:
            value = self.ns[name]
        else:
            raise NameError(f"{test} takes {name!r}: a docs-test setup block defines it (or fixtures[{name!r}])")
        cache[name] = value
        return value

    def _run_setup(self, block: Block) -> None:
        try:
            self._exec(block)
        except Exception:
            self.fail(block, "setup raised:\n" + traceback.format_exc(limit=-3))

    def _run_python(self, block: Block) -> None:
        self.ran["python"] += 1
        try:
            self.last_output, failed = self._exec(block)
        except Exception:
            self.last_output = None
            self.fail(block, "raised:\n" + traceback.format_exc(limit=-3))
            return
        if failed:
            self.failed = (block, self.last_output)

    def _run_output(self, block: Block) -> None:
        self.ran["output"] += 1
        if self.last_output is None:
            self.fail(block, "an output block follows a python block that ran")
            return
        self.failed = None
        actual = normalise(self.last_output, str(self.cwd))
        expected = normalise(block.code)
        if expected and not expected[0].startswith(("AssertionError", "Traceback")) and actual[:1] and actual[0].startswith("AssertionError: "):
            actual[0] = actual[0][len("AssertionError: ") :]  # the docs may show the message alone
        if not matches(expected, actual):
            self.fail(block, "output differs:\n" + diff(expected, actual))
            self.updates.append((block, "\n".join(actual)))
        self.last_output = None

    def _run_pytest(self, block: Block) -> None:
        import subprocess

        self.ran["pytest"] += 1
        (self.cwd / "test_snippet.py").write_text(block.code + "\n", encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"],
            cwd=self.cwd, capture_output=True, text=True, env=env, timeout=600,
        )
        if result.returncode != 0:
            self.fail(block, f"pytest exit {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")

    def _run_pycon(self, block: Block) -> None:
        self.ran["pycon"] += 1
        test = doctest.DocTestParser().get_doctest(block.code, self.ns, block.where, block.page, block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        out = io.StringIO()
        runner.run(test, out=out.write, clear_globs=False)
        self.ns.update(test.globs)  # DocTest works on a copy: what it defined is the page's
        if runner.failures:
            self.fail(block, out.getvalue())

    def _run_console(self, block: Block) -> None:
        from typer.testing import CliRunner

        from torchscope.cli import app

        self.ran["console"] += 1
        runner = CliRunner()
        try:
            commands = console_commands(block.code)
        except ValueError as error:
            self.fail(block, f"{error}: a console block starts with '$ torchscope ...'")
            return
        real: list[str] = []
        drifted = False
        exit_code = 0
        for command, expected_lines in commands:
            real.append(f"$ {command}")
            if command == "echo $?":  # the exit code of the command above
                real.append(str(exit_code))
                if normalise("\n".join(expected_lines)) != [str(exit_code)]:
                    drifted = True
                    self.fail(block, f"exit code {exit_code}, the docs say {expected_lines}")
                continue
            try:
                args = torchscope_args(command)
            except ValueError as error:
                self.fail(block, str(error))
                continue
            result = runner.invoke(app, args, env={"COLUMNS": str(COLUMNS), "NO_COLOR": "1", "TERM": "dumb"})
            if result.exit_code == 3 or (result.exception and not isinstance(result.exception, SystemExit)):
                self.fail(block, f"$ {command}: crashed:\n{result.output}\n{''.join(traceback.format_exception(result.exception))}")
                continue
            exit_code = result.exit_code
            expected = normalise("\n".join(expected_lines))
            actual = normalise(result.output, str(self.cwd))
            real += actual
            if not matches(expected, actual):
                drifted = True
                self.fail(block, f"$ {command} (exit {result.exit_code}): output differs:\n" + diff(expected, actual))

        if drifted:
            self.updates.append((block, "\n".join(real)))

    def _run_bash(self, block: Block) -> None:
        import typer

        from torchscope.cli import app

        self.ran["bash"] += 1
        group = typer.main.get_command(app)
        for raw in block.code.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                args = torchscope_args(line)
                ctx = group.make_context("torchscope", list(args), resilient_parsing=False)
                protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
                name, sub, rest = group.resolve_command(ctx, [*protected, *ctx.args])
                assert sub is not None
                sub.make_context(name or "", rest, parent=ctx)
            except Exception as error:  # typer ships its own click: its errors are not click's classes
                message = error.format_message() if hasattr(error, "format_message") else f"{type(error).__name__}: {error}"
                self.fail(block, f"{line}: {message}")


def run_page(name: str, cwd: Path) -> Page:
    page = Page(name, cwd)
    old, environ, modules, path = Path.cwd(), dict(os.environ), set(sys.modules), list(sys.path)
    os.chdir(cwd)
    sys.path.insert(0, str(cwd))
    try:
        for block in parse(name):
            page.run(block)
        page.finish()
    finally:
        os.chdir(old)
        sys.path[:] = path
        os.environ.clear()
        os.environ.update(environ)
        for module in set(sys.modules) - modules:  # the page's own files (net.py) go with its folder
            if getattr(sys.modules[module], "__file__", None) and str(cwd) in str(sys.modules[module].__file__):
                del sys.modules[module]
    return page


def update(name: str, updates: list[tuple[Block, str]]) -> None:
    """Write each block's real output into the page (``python tests/docblocks.py --update PAGE``)."""
    path = ROOT / name
    lines = path.read_text(encoding="utf-8").splitlines()
    for block, new in sorted(updates, key=lambda u: -u[0].line):
        start = block.line  # index of the first body line
        indent = _FENCE.match(lines[start - 1]).group("indent")  # type: ignore[union-attr]
        end = start
        while lines[end].strip() != _FENCE.match(lines[start - 1]).group("ticks"):  # type: ignore[union-attr]
            end += 1
        lines[start:end] = [indent + ln if ln else ln for ln in new.splitlines()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def census() -> dict[str, Counter[str]]:
    return {page: Counter(b.kind for b in parse(page) if b.kind != "setup") for page in PAGES}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update"]:
        import tempfile

        for name in sys.argv[2:]:
            with tempfile.TemporaryDirectory() as tmp:
                page = run_page(name, Path(tmp))
            update(name, page.updates)
            print(f"{name}: {len(page.updates)} block(s) rewritten from a real run; {len(page.failures) - len(page.updates)} other failure(s)")
            for failure in page.failures:
                print(failure, "\n")
        sys.exit(0)
    total: Counter[str] = Counter()
    for page, counts in census().items():
        total += counts
        print(f"{page:28} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"{'all':28} " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())) + f"; {sum(total.values())} blocks")
