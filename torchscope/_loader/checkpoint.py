"""Reading ``torch.save`` files: which format it is, whether it is whole, and errors that say what is wrong.

``torch.save`` writes a zip archive (``ARCHIVE/data.pkl`` indexes the tensors, ``ARCHIVE/data/N``
holds the bytes of storage ``N``), or, in the legacy format, a pickle. :func:`verify_zip` reads every
record of an archive once, streaming, and checks it against the CRC-32 the archive stores for it: a
flipped byte inside a tensor would otherwise load silently (``torch.load`` does not check). A
damaged record is named by the tensor it holds (:func:`storage_names` reads ``data.pkl`` with an
unpickler that imports nothing and runs no code from the file).

Every way a file can fail to load is a :class:`CheckpointError`, one line naming the file and the fix.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import mmap
import os
import pickle
import pickletools
import re
import struct
import sys
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from torchscope._loader.common import first_line
from torchscope.errors import SpecError

ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20
# modules whose globals a plain state_dict pickles; anything else is a Python object (a whole model)
_DATA_MODULES = ("torch", "collections", "builtins", "__builtin__", "_codecs", "numpy", "copyreg")


class CheckpointError(SpecError):
    """A checkpoint that cannot be used: damaged, truncated, not a checkpoint, or needing code to load."""


# ---------------------------------------------------------------------------------------------
# naming the tensors of an archive without loading it


class _Stub:
    """Whatever a pickle builds that is not a dict, list or tensor: keeps its state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None
        self.items: dict[Any, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.items[len(self.items)] = value

    def extend(self, values: Any) -> None:
        for value in values:
            self.append(value)


class _Storage:
    def __init__(self, key: str, nbytes: int | None = None) -> None:
        self.key = key
        self.nbytes = nbytes  # what the index says the storage holds; None when it cannot tell


class _StorageType:
    """``torch.FloatStorage`` and the like, by name: the element size of a storage's ``numel``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def itemsize(self) -> int | None:
        if self.name == "UntypedStorage":
            return 1
        dtype = _storage_dtypes().get(self.name)
        return None if dtype is None else dtype.itemsize


def _storage_dtypes() -> dict[str, torch.dtype]:
    from torch.storage import _dtype_to_storage_type_map  # the names torch.save writes

    return {name: dtype for dtype, name in _dtype_to_storage_type_map().items()}


class _TensorRef:
    def __init__(self, storage: Any) -> None:
        self.key = storage.key if isinstance(storage, _Storage) else None


def _rebuild_tensor(storage: Any, *args: Any, **kwargs: Any) -> _TensorRef:
    return _TensorRef(storage)


def _rebuild_parameter(data: Any, *args: Any, **kwargs: Any) -> Any:
    return data


class _IndexUnpickler(pickle.Unpickler):
    """Reads ``data.pkl`` into dicts, lists and stand-ins; imports nothing, calls nothing of the file's."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.globals: list[tuple[str, str]] = []
        self.storages: list[_Storage] = []

    def find_class(self, module: str, name: str) -> Any:
        self.globals.append((module, name))
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name.startswith("_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch._utils" and name.startswith("_rebuild_tensor"):
            return _rebuild_tensor
        if module in ("torch", "torch.storage") and name.endswith("Storage"):
            return _StorageType(name)
        return _Stub

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel)
        if isinstance(pid, tuple) and len(pid) > 2 and pid[0] == "storage":
            kind, numel = pid[1], pid[4] if len(pid) > 4 else None
            itemsize = kind.itemsize if isinstance(kind, _StorageType) else None
            nbytes = numel * itemsize if isinstance(numel, int) and itemsize is not None else None
            storage = _Storage(str(pid[2]), nbytes)
            self.storages.append(storage)
            return storage
        return _Stub()


def _walk(obj: Any, prefix: str, out: dict[str, list[str]], depth: int = 0) -> None:
    if depth > 64:
        return
    if isinstance(obj, _TensorRef):
        if obj.key is not None:
            out.setdefault(obj.key, []).append(prefix or "<the object>")
        return
    join = (lambda k: f"{prefix}.{k}") if prefix else str
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, join(k), out, depth + 1)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _walk(v, join(i), out, depth + 1)
    elif isinstance(obj, _Stub):
        state = obj.state
        if isinstance(state, dict) and "_modules" in state:
            # a pickled nn.Module: its tensors under their state_dict names
            for attr in ("_parameters", "_buffers", "_modules"):
                inner = state.get(attr)
                if isinstance(inner, dict):
                    for k, v in inner.items():
                        _walk(v, join(k), out, depth + 1)
        else:
            _walk(state, prefix, out, depth + 1)
            _walk(obj.items, prefix, out, depth + 1)


def _read_index(archive: zipfile.ZipFile) -> tuple[str, _IndexUnpickler, Any] | None:
    index = next((n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1), None)
    if index is None:
        return None
    unpickler = _IndexUnpickler(archive.read(index))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = unpickler.load()
    return index.split("/")[0], unpickler, obj


def storage_names(path: Path) -> dict[str, list[str]]:
    """Storage key (the ``N`` of ``ARCHIVE/data/N``) -> the tensor names that use it; ``{}`` if unreadable.

    >>> import tempfile
    >>> f = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
    >>> torch.save({"fc": {"weight": torch.ones(2), "bias": torch.zeros(2)}}, f)
    >>> storage_names(Path(f))
    {'0': ['fc.weight'], '1': ['fc.bias']}
    """
    out: dict[str, list[str]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            read = _read_index(archive)
            if read is not None:
                _walk(read[2], "", out)
    except Exception:  # naming the tensor is a courtesy; the error is reported anyway
        return {}
    return out


def pickled_classes(path: Path) -> list[str]:
    """The ``module.name`` of every Python object (not a tensor or container) a zip checkpoint pickles."""
    try:
        with zipfile.ZipFile(path) as archive:
            read = _read_index(archive)
    except Exception:  # a hint only
        return []
    if read is None:
        return []
    return [
        f"{m}.{n}"
        for m, n in dict.fromkeys(read[1].globals)
        if m.split(".")[0] not in _DATA_MODULES
    ]


# ---------------------------------------------------------------------------------------------
# format and integrity


def _is_zip(path: Path, head: bytes) -> bool:
    """A zip archive; a file that starts like one but has no readable directory is damaged."""
    if not head.startswith(ZIP_MAGIC) and not zipfile.is_zipfile(path):
        return False
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(
            f"{path} is a truncated or damaged zip archive (the torch.save format; {size} bytes, "
            f"{first_line(exc)}); copy or download it again, or save it again"
        ) from None
    return True


def sniff(path: Path) -> str:
    """``"zip"`` or ``"pickle"``; a :class:`CheckpointError` for anything that is neither."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path} ({exc.strerror or exc}); check the path and permissions") from None
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes); it is not a checkpoint: save it again")
    if _is_zip(path, head):
        return "zip"
    # the legacy torch.save format is a pickle, which starts with PROTO 0x80
    if head[:1] == b"\x80":
        return "pickle"
    raise CheckpointError(
        f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle); check the file"
    )


def verify_zip(path: Path) -> None:
    """Read every record of the archive once and check its CRC-32; name the damaged tensor if one is.

    ``torch.save`` stores records uncompressed: those are checked straight from a read-only map of
    the file, several records at a time (``zlib.crc32`` releases the GIL); a compressed record is
    streamed through :mod:`zipfile`. The cost is one read of the file (docs/loading.md has the
    measured figure); ``--no-verify`` (``verify=False``) skips it.
    """
    try:
        with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
            infos = archive.infolist()
            stored = [i for i in infos if i.compress_type == zipfile.ZIP_STORED and i.file_size > 0]
            problems: dict[str, str] = {}
            if stored:
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
                    workers = max(1, min(8, os.cpu_count() or 1, len(stored)))
                    with ThreadPoolExecutor(workers) as pool:
                        for info, problem in zip(stored, pool.map(lambda i: _check_stored(view, i), stored), strict=True):
                            if problem:
                                problems[info.filename] = problem
            for info in infos:
                if info in stored or info.filename in problems:
                    continue
                try:
                    with archive.open(info) as record:
                        while record.read(_CHUNK):
                            pass
                except (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError, NotImplementedError) as exc:
                    problems[info.filename] = "its CRC-32 does not match" if "CRC" in str(exc) else first_line(exc)
            for info in infos:  # the first damaged record, in archive order
                if info.filename in problems:
                    raise CheckpointError(_damaged(path, info.filename, problems[info.filename]))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is a damaged zip archive ({first_line(exc)}); copy or download it again"
        ) from None


def _check_stored(view: memoryview, info: zipfile.ZipInfo) -> str:
    """Why an uncompressed record is damaged, or ``""`` when its bytes match its CRC-32."""
    start = info.header_offset
    header = bytes(view[start : start + 30])
    if len(header) < 30 or header[:4] != ZIP_MAGIC:
        return "its local header is missing"
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    begin = start + 30 + name_len + extra_len
    end = begin + info.compress_size
    if end > len(view):
        return "it runs past the end of the file (truncated)"
    crc = 0
    for at in range(begin, end, 1 << 24):
        crc = zlib.crc32(view[at : min(end, at + (1 << 24))], crc)
    return "" if crc == info.CRC else "its CRC-32 does not match"


def check_storage_sizes(path: Path) -> None:
    """Every storage record holds the bytes the index (``data.pkl``) says it does.

    A record cut short, with a CRC-32 that matches its short bytes, passes the CRC check, and
    ``torch.load(mmap=True)`` then reads past its end into the next records: wrong values, no error.
    Reading the index runs none of the file's code and reads no tensor bytes.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            read = _read_index(archive)
            sizes = {i.filename: i.file_size for i in archive.infolist()}
    except Exception:  # an index that does not unpickle: torch.load reports it, as before
        return
    if read is None:
        return
    prefix, unpickler, _ = read
    for storage in unpickler.storages:
        record = f"{prefix}/data/{storage.key}"
        if storage.nbytes is None:
            continue
        if record not in sizes:
            raise CheckpointError(_damaged(path, record, "the record is missing", _NO_LOAD))
        if sizes[record] != storage.nbytes:
            why = f"it has {sizes[record]} bytes, the index says {storage.nbytes}"
            raise CheckpointError(_damaged(path, record, why, _NO_LOAD))


# a record of the wrong size cannot be loaded at all (the tensor would be read from other bytes)
_NO_LOAD = "copy or download it again, or save it again"


def _damaged(
    path: Path, record: str, why: str, fix: str = "copy or download it again (or pass --no-verify to load it anyway)"
) -> str:
    _, _, rest = record.partition("/")
    if rest.startswith("data/") and rest.count("/") == 1:
        names = storage_names(path).get(rest.removeprefix("data/"), [])
        if names:
            shown = ", ".join(repr(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            return f"{path} is damaged: the bytes of tensor {shown} (record {record}) are corrupt ({why}); {fix}"
        return f"{path} is damaged: record {record} (a tensor's bytes) is corrupt ({why}); {fix}"
    if rest == "data.pkl":
        return f"{path} is damaged: its index of tensors ({record}) is corrupt ({why}); {fix}"
    return f"{path} is damaged: record {record} is corrupt ({why}); {fix}"


# ---------------------------------------------------------------------------------------------
# loading


def read_checkpoint(path: Path, map_location: str, unsafe_load: bool, verify: bool = True) -> Any:
    """``torch.load`` with ``weights_only=True`` (a whole pickled module only with ``unsafe_load``).

    The archive's CRC-32s are verified first unless ``verify=False``. Any failure is a
    :class:`CheckpointError`.
    """
    kind = sniff(path)
    if kind == "zip":
        if verify:
            verify_zip(path)
        check_storage_sizes(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols in damaged files
            return torch.load(path, map_location=map_location, weights_only=True, mmap=kind == "zip")
    except pickle.UnpicklingError as exc:
        found = refused_global(exc)
        scanned, whole = scan_pickle(path, kind)
        found = found or next((g for g in scanned if not _is_data_global(g)), None)
        if found is None and not whole:
            raise CheckpointError(
                f"{path} is not a loadable PyTorch checkpoint (damaged pickle: {_weights_only_detail(exc)}); "
                "check the file"
            ) from None
        if found is None and not unsafe_load:
            # a whole, code-free pickle that torch's safe unpickler cannot read (protocol 4's FRAME, say)
            raise CheckpointError(
                f"{path} uses pickle features that torch.load(weights_only=True) does not read "
                f"({_weights_only_detail(exc)}; it imports nothing but tensors); save it again with torch.save's "
                "default protocol, or pass --unsafe-load (unsafe_load=True) if you trust it"
            ) from None
        if found is not None and not unsafe_load:
            raise CheckpointError(_code_refused(path, found)) from None
    except Exception as exc:  # any failure of torch.load on a bad file is bad input
        raise CheckpointError(
            f"{path} is not a loadable PyTorch checkpoint ({first_line(exc)}); check the file"
        ) from None
    return _unsafe_load(path, map_location, kind)


# "Unsupported global: GLOBAL eval was not an allowed global by default",
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+?)(?: was not an allowed global| whose module )")


def refused_global(exc: BaseException) -> str | None:
    """The global (``posix.system``, ``mynet.Net``) that ``torch.load(weights_only=True)`` refused, if any."""
    match = _REFUSED_GLOBAL.search(str(exc))
    if match is None:
        return None
    module, _, name = match.group(1).rpartition(".")
    return _py3_name(module, name) if module else name


# what a plain state_dict pickles besides torch's own names
_DATA_GLOBALS = frozenset(
    {"collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset", "builtins.bytearray",
     "builtins.slice", "builtins.complex", "copyreg._reconstructor", "builtins.object"}
)  # fmt: skip


def _is_data_global(dotted: str) -> bool:
    return dotted.startswith(("torch.", "numpy.")) or dotted in _DATA_GLOBALS


def _py3_name(module: str, name: str) -> str:
    """A pickle written with protocol 2 names Python 2 modules (``commands.check_output``): the Python 3 name."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def scan_pickle(path: Path, kind: str) -> tuple[list[str], bool]:
    """Every ``module.name`` the checkpoint's pickle imports, and whether the pickle is whole.

    Read opcode by opcode (:mod:`pickletools`): nothing is imported, nothing of the file's runs.
    """
    found: list[str] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                index = next((n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1), None)
                if index is None:
                    return [], False
                _scan_one(io.BytesIO(archive.read(index)), found)
        else:
            with open(path, "rb") as fh:
                for _ in range(4):  # magic number, protocol, sys info, then the object
                    _scan_one(fh, found)
    except Exception:  # any parse failure means the pickle is not whole
        return found, False
    return found, True


def _scan_one(stream: Any, found: list[str]) -> None:
    strings: list[Any] = []  # what the last pushes were (a str or None), for STACK_GLOBAL
    memo: dict[Any, Any] = {}
    for op, arg, _ in pickletools.genops(stream):
        if op.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            found.append(_py3_name(module, name))
        elif op.name == "STACK_GLOBAL":
            if len(strings) >= 2 and isinstance(strings[-1], str) and isinstance(strings[-2], str):
                found.append(_py3_name(strings[-2], strings[-1]))
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = strings[-1] if strings else None
        elif op.name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            strings.append(memo.get(arg))
        elif op.name != "FRAME":
            strings.append(arg if isinstance(arg, str) else None)


def _is_class(dotted: str) -> bool:
    """Whether a pickled global names a class (a pickled object) rather than a function (a call).

    Looked up only in modules already imported (importing one would run its code), else by the
    naming convention.
    """
    module, _, name = dotted.rpartition(".")
    found = getattr(sys.modules.get(module or "builtins"), name, None)
    if found is not None:
        return isinstance(found, type)
    return name[:1].isupper()


def _code_refused(path: Path, found: str) -> str:
    if _is_class(found):
        return (
            f"{path} pickles Python objects ({found}: a whole module?), and unpickling them runs code from the "
            "file; pass --unsafe-load (unsafe_load=True) only if you trust it, or save a state_dict instead"
        )
    return (
        f"{path} contains code: its pickle calls {found} when it is loaded, which a checkpoint of tensors never "
        "does; refused: pass --unsafe-load (unsafe_load=True) only if you trust the file"
    )


def _weights_only_detail(exc: BaseException) -> str:
    """The unpickler's own reason (``Unsupported operand 124``) out of torch's long message."""
    text = str(exc)
    _, sep, rest = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in rest.splitlines() if line.strip()] if sep else []
    return lines[0][:160] if lines else type(exc).__name__


def _unsafe_load(path: Path, map_location: str, kind: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=False)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise CheckpointError(_missing_class(path, exc, kind)) from None
    except (Exception, SystemExit) as exc:  # unpickling runs the file's code
        raise CheckpointError(f"loading {path} with --unsafe-load failed: {first_line(exc)}") from None


def _missing_class(path: Path, exc: BaseException, kind: str) -> str:
    """The class a whole-model file pickles cannot be imported: say how to make it importable."""
    classes = pickled_classes(path) if kind == "zip" else []
    module = getattr(exc, "name", None) or (classes[0].rpartition(".")[0] if classes else None)
    cls = next((c for c in classes if module and c.startswith(module + ".")), None)
    if not module or cls is None:
        return f"loading {path} with --unsafe-load failed: {first_line(exc)}"
    file = module.replace(".", "/") + ".py"
    beside = path.parent / file
    folder = str(path.parent) if beside.is_file() else f"the folder that holds {file}"
    spec = f"{beside if beside.is_file() else file}:{cls.rpartition('.')[2]}"
    return (
        f"{path} holds a whole {cls}, and module {module!r} is not importable ({first_line(exc)}); "
        f"add {folder} to PYTHONPATH, or load it as `{spec} --weights {path} --unsafe-load`"
    )
