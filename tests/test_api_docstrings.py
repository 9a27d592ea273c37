"""Every public function documents its parameters, what it returns and what it raises (Google style).

mkdocstrings reads the docstrings with griffe's Google parser (``docstring_style: google`` in
mkdocs.yml) and shows ``Args:``, ``Returns:`` and ``Raises:`` as tables on the API pages; this test
parses them with the same parser and holds them to the signature.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import pytest

import torchscope
import torchscope.testing

griffe = pytest.importorskip("griffe")


def public_functions() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for module in (torchscope, torchscope.testing):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value):
                found[f"{module.__name__}.{name}"] = value
    return found


def sections(doc: str) -> dict[str, Any]:
    """The docstring's sections by kind (``parameters``, ``returns``, ``yields``, ``raises``, ...)."""
    logger = logging.getLogger("griffe")
    level, logger.level = logger.level, logging.ERROR  # no "no type annotation" notes: the signature has them
    try:
        parsed = griffe.Docstring(doc).parse("google")
    finally:
        logger.level = level
    return {section.kind.value: section.value for section in parsed}


def problems(function: Callable[..., Any], *, raises: bool = True) -> list[str]:
    doc = inspect.getdoc(function) or ""
    found = sections(doc)
    signature = inspect.signature(function)
    params = [name for name in signature.parameters if name not in ("self", "cls")]
    wrong: list[str] = []
    documented = [item.name.lstrip("*") for item in found.get("parameters", [])]
    if params and "parameters" not in found:
        wrong.append("no Args: section")
    wrong += [f"Args: names {name!r}, which is not a parameter" for name in documented if name not in params]
    wrong += [f"parameter {name!r} is not in Args:" for name in params if "parameters" in found and name not in documented]
    returns_none = signature.return_annotation in (None, "None")
    if not returns_none and not ({"returns", "yields"} & found.keys()):
        wrong.append("no Returns: section")
    if raises and "raises" not in found:
        wrong.append("no Raises: section")
    return wrong


FUNCTIONS = public_functions()
# they raise nothing of their own (preserved lets the block's exception through, after restoring)
RAISE_NOTHING = {"torchscope.capture_state", "torchscope.preserved"}


def test_the_public_api_has_functions_to_check() -> None:
    assert {"torchscope.check_step", "torchscope.summary", "torchscope.testing.assert_frozen"} <= FUNCTIONS.keys()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_public_function_documents_args_returns_raises(name: str) -> None:
    wrong = problems(FUNCTIONS[name], raises=name not in RAISE_NOTHING)
    assert not wrong, f"{name}: " + "; ".join(wrong)


def test_the_check_fails_on_a_wrong_docstring() -> None:
    def f(a: int, b: int = 0) -> int:
        """Add.

        Args:
            a: the first.
            c: not a parameter.

        Returns:
            The sum.
        """
        return a + b

    assert problems(f) == ["Args: names 'c', which is not a parameter", "parameter 'b' is not in Args:", "no Raises: section"]

    def g(x: int) -> None:
        """No sections."""

    assert problems(g) == ["no Args: section", "no Raises: section"]
