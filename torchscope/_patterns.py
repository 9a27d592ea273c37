"""Glob patterns on qualified names: the one matcher behind --freeze, frozen=, --expect-frozen.

A pattern matches a name when it matches the whole name, or names one of its parent modules:
``conv1`` matches ``conv1.weight`` but not ``layer1.0.conv1.weight``; ``layer1.*`` matches everything
under ``layer1``. A pattern that matches nothing is an error, with the closest names suggested.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from fnmatch import translate

from torchscope.errors import PatternError


def name_matches(name: str, pattern: str) -> bool:
    """Whether ``pattern`` selects ``name`` (itself or as one of its parent modules).

    >>> name_matches("layer1.0.conv1.weight", "layer1.*"), name_matches("fc.bias", "fc")
    (True, True)
    >>> name_matches("layer1.0.conv1.weight", "conv1")
    False
    """
    return _compiled(pattern)(name) is not None


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> Callable[[str], re.Match[str] | None]:
    # One regex per pattern for "the name itself, or anything under it": matching thousands of
    # names against hundreds of patterns stays a single C-level match per pair.
    return re.compile(f"(?:{translate(pattern)})|(?:{translate(pattern + '.*')})").match


def match_names(names: Iterable[str], patterns: Sequence[str], *, what: str = "name") -> list[str]:
    """The names (in their order) selected by any of ``patterns``; each pattern must select one.

    >>> match_names(["conv1.weight", "fc.weight", "fc.bias"], ["fc"])
    ['fc.weight', 'fc.bias']
    """
    names = list(names)
    # Most patterns are plain module names: answer those from an index of every dotted prefix
    # instead of scanning all names once per pattern.
    by_prefix: dict[str, list[str]] = {}
    if any(not _has_magic(p) for p in patterns):
        for n in names:
            parts = n.split(".")
            for i in range(1, len(parts) + 1):
                by_prefix.setdefault(".".join(parts[:i]), []).append(n)
    selected: dict[str, None] = {}
    for pattern in patterns:
        if not pattern:
            raise PatternError("empty pattern; give a glob such as 'layer1.*'")
        if _has_magic(pattern):
            match = _compiled(pattern)
            hits = [n for n in names if match(n) is not None]
        else:
            hits = by_prefix.get(pattern, [])
        if not hits:
            raise PatternError(no_match_message(pattern, names, what=what))
        selected.update(dict.fromkeys(hits))
    return [n for n in names if n in selected]


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


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
