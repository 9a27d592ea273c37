"""Where torchscope keeps what it caches (collected trees, the compiled statistics kernel).

Torch-free and CLI-free, so both the tree cache (read before torch is imported) and the core use it.
A cache is an optimisation: a cache directory that cannot be resolved or written is skipped with one
warning, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path

from torchscope.errors import TorchscopeError

_warned: set[str] = set()


class CacheDirError(TorchscopeError):
    """The cache directory cannot be resolved (e.g. ``TORCHSCOPE_CACHE_DIR=~nosuchuser/x``)."""


def cache_dir() -> Path:
    """Where torchscope keeps its caches: ``$TORCHSCOPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchscope``,
    else ``~/.cache/torchscope``.

    Raises :class:`CacheDirError` when the directory cannot be resolved (an unknown ``~user``, no
    home directory); :func:`usable_cache_dir` turns that into a warning.

    >>> print(cache_dir() / "tree")  # doctest: +SKIP
    /home/me/.cache/torchscope/tree
    """
    for var, suffix in (("TORCHSCOPE_CACHE_DIR", ""), ("XDG_CACHE_HOME", "torchscope")):
        value = os.environ.get(var)
        if value:
            path = _expand(value, var)
            return path / suffix if suffix else path
    try:
        return Path.home() / ".cache" / "torchscope"
    except (RuntimeError, KeyError, OSError) as exc:
        raise CacheDirError(
            f"no home directory for the cache ({exc}); set TORCHSCOPE_CACHE_DIR to a writable folder"
        ) from None


def _expand(value: str, var: str) -> Path:
    try:
        path: Path | None = Path(value).expanduser()
    except (RuntimeError, KeyError, OSError):
        path = None  # Python 3.11 raises for an unknown ~user or no home directory
    # later versions leave an unknown ~user as it is: it would become a folder named "~nosuchuser"
    if path is None or (path.parts and path.parts[0].startswith("~")):
        raise CacheDirError(f"{var}={value!r} names no known user's home; set it to a writable folder")
    return path


def warn_cache_unusable(problem: str) -> None:
    """Say once per process, on stderr, that a cache is skipped and why.

    Goes through the ``torchscope`` logger: with no logging configured, Python's last-resort handler
    writes the one line to stderr; an application that configures logging decides for itself.
    """
    if problem in _warned:
        return
    _warned.add(problem)
    import logging  # only on this rare path: it costs milliseconds on every `torchscope tree`

    logging.getLogger("torchscope").warning("warning: %s; running without the cache", problem)


def usable_cache_dir(subdir: str) -> Path | None:
    """``cache_dir() / subdir``, or ``None`` (after one warning line) when it cannot be resolved.

    >>> usable_cache_dir("tree").name  # doctest: +SKIP
    'tree'
    """
    try:
        return cache_dir() / subdir
    except CacheDirError as exc:
        warn_cache_unusable(str(exc))
        return None
