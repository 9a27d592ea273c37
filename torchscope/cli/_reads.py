"""Which files a command read, so that no output of it is written over one of them.

A command's inputs are more than its model spec and ``--weights``: the modules the model's file
imports, an ``hf:`` directory's ``config.json`` and shards, a checkpoint that a builder opens
itself. :func:`reading` records, while a command runs,

* every file opened for reading (an ``open`` audit event: ``open()``, ``os.open``, the import
  system), in any thread, and
* the source file of every module imported meanwhile (a fresh ``.pyc`` is read instead of the
  ``.py``, so the import itself opens no source),

and :func:`files_read` lists them, plus every file of a Hugging Face model directory that was read
from (its shards are read by native code that Python's audit hooks never see). An audit hook cannot
be removed, so one is added on first use and does nothing while no command is recording.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# names of the files that make a folder a Hugging Face model (or adapter) directory, and the
# suffixes of the weight files in it that native code (safetensors) reads unseen
_HF_DIR_MARKERS = frozenset({"config.json", "adapter_config.json"})
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")


class _Recording:
    __slots__ = ("modules_before", "opened")

    def __init__(self) -> None:
        self.opened: set[str] = set()
        self.modules_before: set[str] = set(sys.modules)


_ACTIVE: list[_Recording] = []  # not a context variable: a model may read in threads of its own
_HOOKED: list[bool] = []
_UNRECORDED: set[int] = set()  # threads reading for torchscope itself (an output's first bytes)


def _is_read(flags: Any) -> bool:
    if not isinstance(flags, int):
        return True
    if flags & os.O_CREAT and flags & os.O_EXCL:
        return False  # a file made new (a temporary): nothing was in it to read
    return flags & os.O_ACCMODE != os.O_WRONLY


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    # runs for every audited event of the process: cheap, and it must never raise
    if event != "open" or not _ACTIVE or threading.get_ident() in _UNRECORDED:
        return
    try:
        path, _, flags = args
        if isinstance(path, int) or not _is_read(flags):
            return
        name = os.fsdecode(path)
        if not os.path.isabs(name):
            name = os.path.join(os.getcwd(), name)
        for recording in _ACTIVE:
            recording.opened.add(name)
    except Exception:  # an audit hook that raises would break the user's open()
        return


@contextmanager
def reading() -> Iterator[None]:
    """Record the files read while the block runs (see the module docs); :func:`files_read` lists them."""
    if not _HOOKED:
        sys.addaudithook(_on_audit)
        _HOOKED.append(True)
    recording = _Recording()
    _ACTIVE.append(recording)
    try:
        yield
    finally:
        _ACTIVE.remove(recording)


@contextmanager
def unrecorded() -> Iterator[None]:
    """Reads by torchscope itself in this thread (is an output ours?) are no input of the command."""
    me = threading.get_ident()
    nested = me in _UNRECORDED
    _UNRECORDED.add(me)
    try:
        yield
    finally:
        if not nested:
            _UNRECORDED.discard(me)


def _module_files(recording: _Recording) -> set[str]:
    files: set[str] = set()
    for name, module in list(sys.modules.items()):
        if name in recording.modules_before:
            continue
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            files.add(os.path.abspath(path))
    return files


def folder_files(folder: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """The files directly in ``folder`` (those ending in one of ``suffixes``, if given)."""
    try:
        return [p for p in folder.iterdir() if p.is_file() and (suffixes is None or p.name.endswith(suffixes))]
    except OSError:
        return []


def files_read() -> list[Path]:
    """The files the innermost running :func:`reading` block has seen read so far ([] outside one)."""
    if not _ACTIVE:
        return []
    recording = _ACTIVE[-1]
    files = set(recording.opened) | _module_files(recording)
    folders = {os.path.dirname(f) for f in files if os.path.basename(f) in _HF_DIR_MARKERS}
    for folder in folders:
        files.update(str(p) for p in folder_files(Path(folder), _WEIGHT_SUFFIXES))
    return [Path(f) for f in sorted(files)]
