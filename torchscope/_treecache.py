"""An on-disk cache of ``torchscope tree`` results, read without importing torch.

Importing torch and torchvision costs seconds; building a torchvision model on meta and collecting its
tree costs well under one. So the CLI keys the *collected* :class:`ModuleTree` of a plain torchvision
name by everything that could change it (spec, ``--arg``, freeze options, torch/torchvision/torchscope
versions and the source of the modules that compute it) and, on a hit, renders it with no torch import.

Only results that are a pure function of that key are cached: a torchvision name built on ``meta``
without ``--weights`` or ``--pretrained``. A cache that cannot be read or written is a miss, never an
error.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from torchscope._treedata import ModuleTree
from torchscope.errors import TorchscopeError

# bump when the file layout or the meaning of a cached tree changes
SCHEMA = 1
_PACKAGES = ("torch", "torchvision", "torchscope")
# the modules whose code decides what a cached tree holds; an edit to any of them is a new key
_SOURCES = ("_tree.py", "_treedata.py", "_loader", "_freeze.py", "_patterns.py", "_parsing.py", "cli/_common.py")
_HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """Where torchscope keeps its caches: ``$TORCHSCOPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchscope``,
    else ``~/.cache/torchscope``.

    >>> print(cache_dir() / "tree")  # doctest: +SKIP
    /home/me/.cache/torchscope/tree
    """
    explicit = os.environ.get("TORCHSCOPE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "torchscope"
    return Path.home() / ".cache" / "torchscope"


def _tree_dir() -> Path:
    return cache_dir() / "tree"


def _dist_version(name: str) -> str | None:
    """The installed version of distribution ``name``.

    Read from the ``NAME-VERSION.dist-info`` directory name on ``sys.path`` (first hit wins, as for
    ``importlib.metadata``), because importing ``importlib.metadata`` alone costs ~30 ms and this
    runs on every ``torchscope tree``. Falls back to ``importlib.metadata`` for other layouts.
    """
    prefix = name.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        hits = [n for n in names if n.lower().startswith(prefix) and n.endswith(".dist-info")]
        if len(hits) == 1:
            return hits[0][len(prefix) : -len(".dist-info")]
        if hits:
            break  # several versions side by side: let importlib.metadata decide
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _source_hash() -> str | None:
    digest = hashlib.sha256()
    for rel in _SOURCES:
        try:
            path = _HERE / rel
            # a package counts with every module in it
            files = sorted(path.glob("*.py")) if path.is_dir() else [path]
            if not files:
                return None
            for file in files:
                name = file.relative_to(_HERE).as_posix()
                digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
        except OSError:
            return None
    return digest.hexdigest()


def tree_cache_key(
    spec: str,
    *,
    weights: object | None = None,
    args: list[str] | None = None,
    pretrained: bool = False,
    device: str = "meta",
    freeze: str | None = None,
    unfreeze: str | None = None,
    freeze_backbone: bool = False,
) -> str | None:
    """The cache key of ``torchscope tree SPEC [options]``, or ``None`` when the result is not cacheable.

    Cacheable: a plain torchvision-style name (letters, digits, ``_``) that is not also a file in the
    current directory, built on ``meta``, with no ``--weights`` and no ``--pretrained``. A bad
    ``--arg`` raises the same :class:`~torchscope.errors.TorchscopeError` loading would.

    >>> tree_cache_key("resnet18") == tree_cache_key("resnet18", args=[]), tree_cache_key("x.py:Net")
    (True, None)
    """
    from torchscope._parsing import parse_kwargs, split_patterns

    if weights is not None or pretrained or device != "meta":
        return None
    if not spec.replace("_", "").isalnum() or Path(spec).is_file():
        return None
    versions = {name: _dist_version(name) for name in _PACKAGES}
    sources = _source_hash()
    if sources is None or None in versions.values():
        return None
    payload = {
        "schema": SCHEMA,
        "python": sys.implementation.cache_tag,
        "spec": spec,
        # parsed, so `--arg a=1 --arg b=2` and `--arg b=2 --arg a=1` share an entry; repr keeps
        # 1, 1.0 and True apart
        "args": repr(sorted(parse_kwargs(args).items())),
        "freeze": split_patterns(freeze),
        "unfreeze": split_patterns(unfreeze),
        "freeze_backbone": bool(freeze_backbone),
        "versions": versions,
        "sources": sources,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _entry_path(key: str) -> Path:
    return _tree_dir() / f"{key}.json"


def load_cached_tree(key: str) -> ModuleTree | None:
    """The tree stored under ``key``, or ``None`` when there is none or it cannot be used.

    A missing, unreadable, truncated or foreign file is a miss, never an error.

    >>> load_cached_tree("0" * 64) is None
    True
    """
    try:
        raw = _entry_path(key).read_bytes()
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("key") != key:
            return None
        return ModuleTree.from_dict(doc["tree"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError, TorchscopeError):
        return None


def store_tree(key: str, tree: ModuleTree) -> None:
    """Save ``tree`` under ``key``, atomically; a cache that cannot be written is silently skipped.

    The file is written next to its final name and renamed into place, so a reader never sees half a
    file, even with two ``torchscope tree`` runs at once.
    """
    text = json.dumps({"schema": SCHEMA, "key": key, "tree": tree.to_dict()}, separators=(",", ":"))
    folder = _tree_dir()
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:16]}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, _entry_path(key))
        tmp = None
    except OSError:
        pass  # a read-only or full cache must never fail the command
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
