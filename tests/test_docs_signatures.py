"""A signature written in the docs by hand (``torchscope._loader.unwrap(model)``) matches the code.

Headings that state a public function's whole signature are checked by tests/test_docs_api.py;
this test takes every other inline ``torchscope.<path>(...)`` whose text reads as a signature
(names, ``*``, ``name=<literal>``) on README.md and docs/: each name must be a parameter, each
default the code's default, and every required parameter must be there.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
INLINE = re.compile(r"`(torchscope(?:\.\w+)+)\(([^`]*)\)`")
_NO_DEFAULT = object()


def documented_params(text: str) -> list[tuple[str, Any]] | None:
    """``[(name, default or _NO_DEFAULT)]`` when ``text`` reads as a signature, else None (a call).

    A signature is empty or names at least one parameter bare: ``CheckFreeze(every_n_steps=1000)``
    (keywords only) is a call with a value of the reader's choosing.
    """
    found: list[tuple[str, Any]] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item == "*":
            continue
        if re.fullmatch(r"\*{0,2}[a-z_]\w*", item):
            found.append((item.lstrip("*"), _NO_DEFAULT))
            continue
        match = re.fullmatch(r"([a-z_]\w*)=(.+)", item)
        if match is None:
            return None
        try:
            found.append((match.group(1), ast.literal_eval(match.group(2))))
        except (ValueError, SyntaxError):
            return None
    if found and all(default is not _NO_DEFAULT for _, default in found):
        return None
    return found


def resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            value = getattr(value, name)
        return value
    raise AssertionError(f"{dotted} does not resolve")


def signatures_in_docs() -> list[tuple[str, str, list[tuple[str, Any]]]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = []
    for page in pages:
        for match in INLINE.finditer(page.read_text(encoding="utf-8")):
            params = documented_params(match.group(2))
            if params is not None:
                found.append((f"{page.name}: {match.group(0)}", match.group(1), params))
    return found


def mismatches(dotted: str, params: list[tuple[str, Any]]) -> list[str]:
    real = inspect.signature(resolve(dotted)).parameters
    wrong = [f"{name!r} is not a parameter (the code has {list(real)})" for name, _ in params if name not in real]
    for name, default in params:
        if name in real and default is not _NO_DEFAULT and real[name].default != default:
            wrong.append(f"{name}={default!r}, but the code's default is {real[name].default!r}")
    named = {name for name, _ in params}
    wrong += [
        f"required parameter {name!r} is left out"
        for name, p in real.items()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in named
    ]
    return wrong


SIGNATURES = signatures_in_docs()


def test_the_docs_have_handwritten_signatures_to_check() -> None:
    assert any("default_input_size" in where for where, _, _ in SIGNATURES)


@pytest.mark.parametrize(("where", "dotted", "params"), SIGNATURES, ids=[s[0] for s in SIGNATURES])
def test_a_handwritten_signature_matches_the_code(where: str, dotted: str, params: list[tuple[str, Any]]) -> None:
    wrong = mismatches(dotted, params)
    assert not wrong, f"{where}: " + "; ".join(wrong)


def test_the_check_fails_on_a_drifted_signature() -> None:
    assert documented_params('name, batch=1') == [("name", _NO_DEFAULT), ("batch", 1)]
    assert documented_params("model, input_data=x") is None  # a call, not a signature
    assert documented_params("every_n_steps=1000") is None
    assert mismatches("torchscope._loader.default_input_size", [("name", _NO_DEFAULT), ("batch", 2)]) == [
        "'name' is not a parameter (the code has ['spec_or_model_name', 'batch'])",
        "batch=2, but the code's default is 1",
        "required parameter 'spec_or_model_name' is left out",
    ]
