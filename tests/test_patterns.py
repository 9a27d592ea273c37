"""The one glob matcher: module prefixes, globs, and errors that suggest the fix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from torchscope._patterns import match_names, name_matches
from torchscope.errors import PatternError

NAMES = ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.1.bn1.bias", "fc.weight", "fc.bias"]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["conv1"], ["conv1.weight"]),
        (["layer1.*"], ["layer1.0.conv1.weight", "layer1.1.bn1.bias"]),
        (["fc", "bn1"], ["bn1.weight", "fc.weight", "fc.bias"]),
        (["*.bias"], ["layer1.1.bn1.bias", "fc.bias"]),
        (["layer1.?.conv1"], ["layer1.0.conv1.weight"]),
        (["fc.weight"], ["fc.weight"]),
    ],
)
def test_match_names(patterns: list[str], expected: list[str]) -> None:
    assert match_names(NAMES, patterns) == expected


def test_unknown_pattern_names_it_and_suggests() -> None:
    with pytest.raises(PatternError, match=r"pattern 'layr1' matches no param; did you mean 'layer1'"):
        match_names(NAMES, ["layr1"], what="param")


def test_empty_pattern_is_an_error() -> None:
    with pytest.raises(PatternError, match="empty pattern"):
        match_names(NAMES, [""])


segment = st.sampled_from(["a", "b", "ab", "0", "1", "fc"])
dotted = st.lists(segment, min_size=1, max_size=4).map(".".join)


@given(names=st.lists(dotted, min_size=1, max_size=20, unique=True), pattern=dotted)
def test_prefix_index_agrees_with_name_matches(names: list[str], pattern: str) -> None:
    expected = [n for n in names if name_matches(n, pattern)]
    if expected:
        assert match_names(names, [pattern]) == expected
    else:
        with pytest.raises(PatternError):
            match_names(names, [pattern])
