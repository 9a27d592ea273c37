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

from torchscope._parsing import parse_kwargs, split_patterns
from torchscope._paths import usable_cache_dir, warn_cache_unusable
from torchscope._treedata import ModuleTree
from torchscope.errors import TorchscopeError

# bump when the file layout or the meaning of a cached tree changes
SCHEMA = 2
MAX_ENTRY_BYTES = 8 * 1024 * 1024
"""The largest entry read or written: 8 MiB, 16x the largest torchvision tree (efficientnet_v2_l,
0.50 MB). A larger file is a miss that is never parsed, so a planted giant cannot slow a run down."""
_PACKAGES = ("torch", "torchvision", "torchscope")
# the modules whose code decides what a cached tree holds; an edit to any of them is a new key
_SOURCES = ("_tree.py", "_treedata.py", "_loader", "_freeze.py", "_patterns.py", "_parsing.py", "cli/_common.py")
_HERE = Path(__file__).resolve().parent


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
        "unfreeze": split_patterns(unfreeze, option="--unfreeze"),
        "freeze_backbone": bool(freeze_backbone),
        "versions": versions,
        "sources": sources,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _entry_path(folder: Path, key: str) -> Path:
    return folder / f"{key}.json"


def _checksum(key: str, body: bytes) -> str:
    # covers the key too, so an entry copied or renamed to another key's file is not its answer
    return hashlib.sha256(key.encode() + b"\0" + body).hexdigest()


def load_cached_tree(key: str) -> ModuleTree | None:
    """The tree stored under ``key``, or ``None`` when there is none or it cannot be trusted.

    A missing, unreadable, truncated, edited, foreign or oversized (> :data:`MAX_ENTRY_BYTES`) file
    is a miss, never an error: the caller rebuilds the tree and :func:`store_tree` rewrites it.

    >>> load_cached_tree("0" * 64) is None
    True
    """
    folder = usable_cache_dir("tree")
    if folder is None:
        return None
    try:
        path = _entry_path(folder, key)
        with open(path, "rb") as fh:
            # bounded read: an entry over the cap is never parsed, however large it is
            raw = fh.read(MAX_ENTRY_BYTES + 1)
        if len(raw) > MAX_ENTRY_BYTES:
            return None
        header_line, sep, body = raw.partition(b"\n")
        if not sep:
            return None
        header = json.loads(header_line)
        if (
            not isinstance(header, dict)
            or header.get("schema") != SCHEMA
            or header.get("key") != key
            or header.get("size") != len(body)
            or header.get("sha256") != _checksum(key, body)
        ):
            return None
        return ModuleTree.from_dict(json.loads(body))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, TorchscopeError):
        return None


def store_tree(key: str, tree: ModuleTree) -> None:
    """Save ``tree`` under ``key``, atomically, with the checksum :func:`load_cached_tree` verifies.

    The file is written next to its final name and renamed into place, so a reader never sees half a
    file, even with two ``torchscope tree`` runs at once. A cache that cannot be written is skipped
    with one warning line; a tree over :data:`MAX_ENTRY_BYTES` is not stored.
    """
    body = json.dumps(tree.to_dict(), separators=(",", ":")).encode()
    if len(body) > MAX_ENTRY_BYTES - 4096:  # leave room for the header line
        return
    header = {"schema": SCHEMA, "key": key, "size": len(body), "sha256": _checksum(key, body)}
    folder = usable_cache_dir("tree")
    if folder is None:
        return
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:16]}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(header, separators=(",", ":")).encode() + b"\n" + body)
        os.replace(tmp, _entry_path(folder, key))
        tmp = None
    except OSError as exc:
        # a read-only or full cache must never fail the command
        warn_cache_unusable(f"cannot write the tree cache in {folder} ({exc.strerror or exc})")
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
