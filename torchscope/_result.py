"""The one result protocol: ``to_dict()``/``from_dict()`` that round-trip exactly, a schema in the JSON,
and a result that shows itself (``repr``, ``_repr_mimebundle_``). No torch, no renderer imports.

Every object a public function returns is a frozen dataclass that subclasses :class:`Result` (its
parts subclass :class:`Record`)::

    @dataclass(frozen=True, repr=False)  # or @record: the same, no code compiled at import
    class GradReport(Result):
        SCHEMA = "torchscope.grads/1"
        DERIVED = ("status", "checked")  # computed, written for readers, ignored by from_dict

``to_dict()`` writes ``{"schema": SCHEMA, <every field>, <every DERIVED value>}``: tuples as lists,
non-finite floats as ``"NaN"``/``"Infinity"``/``"-Infinity"`` (strict JSON has neither), fields named in
``MAPPINGS`` (tuples of ``(key, value)`` pairs) as JSON objects, a field renamed by ``KEYS``. The
inverse, ``from_dict()``, reads the dataclass's own type hints, checks every key and every value's
type, and refuses a dict of another schema or of an unknown major version with one line.

Display goes through :mod:`torchscope._display`, the one documented boundary between the core and
``torchscope.render`` (see CONTRIBUTING.md).
"""

from __future__ import annotations

import math
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from torchscope import _display
from torchscope._frozen import Frozen, record
from torchscope.errors import TorchscopeError

__all__ = ["Frozen", "Record", "Result", "check_schema", "json_float", "jsonable", "read_float", "record"]

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10: type checkers read the 3.11 branch

    def dataclass_transform(**kwargs: Any) -> Callable[[Any], Any]:
        return lambda f: f


_T = TypeVar("_T")


def json_float(x: float | None) -> float | str | None:
    """A float JSON can hold: NaN and the infinities become the strings ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"``, the one spelling every ``--json`` output uses (JavaScript's names).

    >>> json_float(1.5), json_float(float("inf")), json_float(float("nan")), json_float(None)
    (1.5, 'Infinity', 'NaN', None)
    """
    if x is None or math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def read_float(value: Any, key: str) -> float:
    """The inverse of :func:`json_float` for one non-null value; anything else is a TorchscopeError."""
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TorchscopeError(f"field {key!r} must be a number, got {value!r}")
    return float(value)


def jsonable(value: Any) -> Any:
    """Plain JSON-ready data of a dataclass, tuple, dict or scalar (records through their own to_dict)."""
    if isinstance(value, Record):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return to_dict()
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def check_schema(d: Any, schema: str) -> None:
    """Refuse ``d`` unless it carries ``schema``'s name with the same major version (minor may differ).

    >>> check_schema({"schema": "torchscope.tree/1.3"}, "torchscope.tree/1")
    >>> check_schema({"schema": "torchscope.tree/2"}, "torchscope.tree/1")
    Traceback (most recent call last):
    ...
    torchscope.errors.TorchscopeError: torchscope.tree/2 is a newer major version than this torchscope reads (torchscope.tree/1); upgrade torchscope, or write the file again with this version
    """
    name, _, version = schema.partition("/")
    if not isinstance(d, Mapping):
        raise TorchscopeError(
            f"a {name} result must be a dict, got {type(d).__name__}; pass the output of to_dict()"
        )
    found = d.get("schema")
    if found is None:
        raise TorchscopeError(
            f"not a {name} result: no 'schema' key; pass the output of to_dict() from this torchscope version"
        )
    found_name, _, found_version = str(found).partition("/")
    if found_name != name:
        raise TorchscopeError(
            f"not a {name} result (schema {found!r}); read it with the result type it names"
        )
    if found_version.split(".")[0] != version.split(".")[0]:
        raise TorchscopeError(
            f"{found} is a {'newer' if found_version > version else 'older'} major version than this "
            f"torchscope reads ({schema}); upgrade torchscope, or write the file again with this version"
        )


class Record(Frozen):
    """A frozen dataclass of plain data with an exact ``to_dict()``/``from_dict()`` pair.

    Class attributes tune the JSON: ``DERIVED`` (properties or no-argument methods whose values are
    written for readers and ignored on reading), ``MAPPINGS`` (fields of ``(key, value)`` pairs written
    as an object), ``KEYS`` ((field or derived name, JSON key) pairs), ``SKIP`` (fields that are display options, not data).
    """

    DERIVED: ClassVar[tuple[str, ...]] = ()
    MAPPINGS: ClassVar[tuple[str, ...]] = ()
    KEYS: ClassVar[tuple[tuple[str, str], ...]] = ()
    SKIP: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; :meth:`from_dict` is its exact inverse."""
        out: dict[str, Any] = {}
        keys = dict(self.KEYS)
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in self.SKIP:
                continue
            value = getattr(self, f.name)
            if f.name in self.MAPPINGS:
                value = {str(k): jsonable(v) for k, v in value}
            else:
                value = jsonable(value)
            out[keys.get(f.name, f.name)] = value
        for name in self.DERIVED:
            value = getattr(self, name)
            out[keys.get(name, name)] = jsonable(value() if callable(value) else value)
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Any:
        """The inverse of :meth:`to_dict`: every key and value is checked (the dict may come from a file)."""
        return _decode_record(cls, d)


class Result(Record):
    """A result a public function returns: a :class:`Record` with a schema that shows itself.

    ``repr()`` is the plain-text table, ``_repr_mimebundle_`` adds the HTML of the ``report`` page's
    renderer. Adopting it is one base class and ``repr=False`` on the dataclass (which would otherwise
    write its own ``__repr__``), plus a renderer registered for the schema's name in
    ``torchscope.render.display``.
    """

    SCHEMA: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"schema": SCHEMA, ...}``: plain JSON-ready data; :meth:`from_dict` is its exact inverse."""
        return {"schema": self.SCHEMA, **super().to_dict()}

    @classmethod
    def from_dict(cls, d: Any) -> Any:
        """Read :meth:`to_dict` output back; another schema or an unknown major version is refused."""
        check_schema(d, cls.SCHEMA)
        return _decode_record(cls, {k: v for k, v in d.items() if k != "schema"})

    def __repr__(self) -> str:
        return _display.text(self)

    def __str__(self) -> str:
        return _display.text(self)

    def _repr_html_(self) -> str:
        return _display.html(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        # Jupyter shows text/html and keeps text/plain for consoles; nothing is printed, so the
        # table appears once
        return {"text/plain": _display.text(self), "text/html": _display.html(self)}

    def to_dataframe(self) -> Any:
        """The result's rows as a ``pandas.DataFrame`` (pandas is imported only here)."""
        rows = self.table_rows()
        try:
            import pandas
        except ImportError:
            raise TorchscopeError(
                "to_dataframe() needs pandas; install it with pip install 'torchscope[pandas]' (or pip install pandas)"
            ) from None
        return pandas.DataFrame(rows)

    def table_rows(self) -> list[dict[str, Any]]:
        """One flat dict per row of the result's main table (what :meth:`to_dataframe` holds)."""
        raise TorchscopeError(f"{type(self).__name__} has no table of rows; use to_dict()")


# --- decoding by type hint ----------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        # the generated __init__'s (or a record's own, see _own_init): evaluated in the defining
        # module's globals (torchscope.__getattr__ renames a public class's __module__ to
        # "torchscope", which would resolve nothing)
        hints = _HINTS[cls] = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    return hints


def _decode_record(cls: type, d: Any) -> Any:
    if not isinstance(d, Mapping):
        raise TorchscopeError(f"{cls.__name__}.from_dict needs a dict, got {type(d).__name__}")
    keys = dict(getattr(cls, "KEYS", ()))
    skip = getattr(cls, "SKIP", ())
    derived = {keys.get(name, name) for name in getattr(cls, "DERIVED", ())}
    wanted = {keys.get(f.name, f.name): f for f in fields(cls) if f.init and f.name not in skip}
    expected = set(wanted) | derived
    if set(d) != expected:
        missing, extra = sorted(expected - set(d)), sorted(set(d) - expected)
        raise TorchscopeError(
            f"not a {cls.__name__} dict: missing {missing}, unexpected {extra}; "
            "pass the output of to_dict() from this torchscope version"
        )
    hints = _hints(cls)
    mappings = getattr(cls, "MAPPINGS", ())
    kwargs: dict[str, Any] = {}
    for key, f in wanted.items():
        value = d[key]
        if f.name in mappings:
            if not isinstance(value, Mapping):
                raise TorchscopeError(f"field {key!r} must be an object, got {value!r}")
            value = [[k, v] for k, v in value.items()]
        kwargs[f.name] = _decode(value, hints[f.name], key)
    return cls(**kwargs)


def _decode(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Union or origin is types.UnionType:
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(value, arg, key)
            except TorchscopeError as exc:
                errors.append(str(exc))
        raise TorchscopeError(
            errors[0] if len(errors) == 1 else f"field {key!r} has no valid type: {value!r}"
        )
    if origin is Literal:
        if value not in get_args(hint):
            raise TorchscopeError(f"field {key!r} must be one of {get_args(hint)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TorchscopeError(f"field {key!r} must be a list, got {value!r}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise TorchscopeError(f"field {key!r} must hold {len(args)} items, got {value!r}")
        return tuple(_decode(v, a, key) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise TorchscopeError(f"field {key!r} must be an object, got {value!r}")
        _, vt = get_args(hint)
        return {str(k): _decode(v, vt, key) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise TorchscopeError(f"field {key!r} must be a bool, got {value!r}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TorchscopeError(f"field {key!r} must be an int, got {value!r}")
        return value
    if hint is float:
        return read_float(value, key)
    if hint is str:
        if not isinstance(value, str):
            raise TorchscopeError(f"field {key!r} must be a str, got {value!r}")
        return value
    if isinstance(hint, type) and is_dataclass(hint):
        reader = getattr(hint, "from_dict", None)
        if reader is None:
            return _decode_record(hint, value)
        if not isinstance(value, Mapping):
            raise TorchscopeError(f"{hint.__name__}.from_dict needs a dict, got {type(value).__name__}")
        try:
            return reader(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise TorchscopeError(
                f"field {key!r} is not a valid {hint.__name__} ({type(exc).__name__}: {exc})"
            ) from None
    raise TorchscopeError(f"field {key!r}: cannot read type {hint!r}")  # pragma: no cover - a bug
