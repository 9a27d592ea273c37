"""Glob patterns on qualified names: the one matcher behind --freeze, frozen=, --expect-frozen.

A pattern matches a name when it matches the whole name, or names one of its parent modules:
``conv1`` matches ``conv1.weight`` but not ``layer1.0.conv1.weight``; ``layer1.*`` matches everything
under ``layer1``. A pattern that matches nothing is an error, with the closest names suggested.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from torchscope.errors import PatternError


def name_matches(name: str, pattern: str) -> bool:
    """Whether ``pattern`` selects ``name`` (itself or as one of its parent modules).

    >>> name_matches("layer1.0.conv1.weight", "layer1.*"), name_matches("fc.bias", "fc")
    (True, True)
    >>> name_matches("layer1.0.conv1.weight", "conv1")
    False
    """
    return fnmatchcase(name, pattern) or fnmatchcase(name, pattern + ".*")


def match_names(names: Iterable[str], patterns: Sequence[str], *, what: str = "name") -> list[str]:
    """The names (in their order) selected by any of ``patterns``; each pattern must select one.

    >>> match_names(["conv1.weight", "fc.weight", "fc.bias"], ["fc"])
    ['fc.weight', 'fc.bias']
    """
    names = list(names)
    selected: dict[str, None] = {}
    for pattern in patterns:
        if not pattern:
            raise PatternError("empty pattern; give a glob such as 'layer1.*'")
        hits = [n for n in names if name_matches(n, pattern)]
        if not hits:
            raise PatternError(no_match_message(pattern, names, what=what))
        selected.update(dict.fromkeys(hits))
    return [n for n in names if n in selected]


def no_match_message(pattern: str, names: Sequence[str], *, what: str = "name") -> str:
    """One line naming the pattern, and the closest names (module prefixes included) as the fix."""
    candidates: dict[str, None] = {}
    for n in names:
        parts = n.split(".")
        for i in range(1, len(parts) + 1):
            candidates[".".join(parts[:i])] = None
    close = difflib.get_close_matches(pattern.rstrip(".*"), list(candidates), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; list names with `torchscope tree`"
    return f"pattern {pattern!r} matches no {what}{hint}"
