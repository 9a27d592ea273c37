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

import dataclasses
import inspect
import math
import reprlib
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError, dataclass, fields, is_dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from torchscope import _display
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


_COMPARED: dict[type, tuple[str, ...]] = {}
_SHOWN: dict[type, tuple[str, ...]] = {}


def _compared(cls: type) -> tuple[str, ...]:
    names = _COMPARED.get(cls)
    if names is None:
        names = _COMPARED[cls] = tuple(f.name for f in fields(cls) if f.compare)  # type: ignore[arg-type]
    return names


class _RecordSignature:
    """``inspect.signature()`` of a record class: its fields, computed on the first request."""

    def __get__(self, instance: object, owner: type) -> inspect.Signature | None:
        spec = getattr(owner, "__record__", None) if instance is None else None
        if spec is None or getattr(getattr(owner, "__init__", None), "__code__", None) not in _INIT_CODES:
            return None  # not a record class (or it wrote its own __init__): inspect as usual
        if spec.signature is None:
            spec.signature = _signature(owner)
        return spec.signature


class Frozen:
    """``==``, ``hash()`` and ``repr()`` of a frozen dataclass, written once instead of per class.

    ``@dataclass(frozen=True, eq=False, repr=False)`` on a subclass gives what ``dataclass`` would
    generate (the fields with ``compare`` as a tuple, equal only to an instance of the same class;
    the hash of that tuple; ``Name(field=value, ...)`` of the fields with ``repr``) without
    compiling three functions per class when the module is imported. :func:`record` goes further
    (the classes a first ``summary()`` imports use it): ``__init__``, ``__setattr__`` and
    ``__delattr__`` are shared too, so no function is compiled for the class at all (each generated
    function costs about 0.3 ms to compile).
    """

    __slots__ = ()

    if typing.TYPE_CHECKING:
        # every subclass is a dataclass (fields(), replace() and asdict() take it)
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = _compared(self.__class__)
        return tuple([getattr(self, n) for n in names]) == tuple([getattr(other, n) for n in names])

    def __hash__(self) -> int:
        return hash(tuple([getattr(self, n) for n in _compared(self.__class__)]))

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        cls = self.__class__
        names = _SHOWN.get(cls)
        if names is None:
            names = _SHOWN[cls] = tuple(f.name for f in fields(cls) if f.repr)  # type: ignore[arg-type]
        return f"{cls.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    # A @dataclass(frozen=True) subclass writes its own pair; a @record class uses these, which say
    # what the generated ones say: every name is refused on the class itself, a field's on a subclass.
    def __setattr__(self, name: str, value: Any) -> None:
        cls = self.__class__
        if "__record__" in cls.__dict__ or name in getattr(cls, "__dataclass_fields__", ()):
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        cls = self.__class__
        if "__record__" in cls.__dict__ or name in getattr(cls, "__dataclass_fields__", ()):
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super().__delattr__(name)

    __signature__ = _RecordSignature()


class _Spec:
    """How :func:`_record_init` binds the arguments of one record class (built once, at decoration)."""

    __slots__ = (
        "bind", "count", "defaults", "factories", "fast", "kwonly", "kwonly_required", "names", "npos",
        "npos_required", "params", "positional", "qualname", "required", "signature", "taken", "template",
    )  # fmt: skip

    def __init__(self, cls: type) -> None:
        all_fields = fields(cls)  # type: ignore[arg-type]
        params = [f for f in all_fields if f.init]
        self.positional = tuple(f.name for f in params if not f.kw_only)
        self.kwonly = frozenset(f.name for f in params if f.kw_only)
        self.params = frozenset(f.name for f in params)
        self.count = len(params)
        # the positional names the first n arguments take, for n = 0 .. all (a keyword among them
        # is given twice)
        self.taken = tuple(frozenset(self.positional[:n]) for n in range(len(self.positional) + 1))
        self.defaults = sum(1 for f in params if not f.kw_only and not _no_default(f))  # positional ones
        # every field the generated __init__ sets, in its order (vars(), pickle bytes): the default,
        # or a marker for a factory to call or an argument still missing
        self.template = {
            f.name: _REQUIRED
            if _no_default(f)
            else f.default
            if f.default_factory is dataclasses.MISSING
            else _FACTORY
            for f in all_fields
            if f.init or f.default_factory is not dataclasses.MISSING
        }
        self.required = tuple((f.name, f.kw_only) for f in params if _no_default(f))
        self.npos = len(self.positional)
        self.npos_required = sum(1 for _, kw in self.required if not kw)
        self.kwonly_required = self.npos_required < len(self.required)
        self.factories = tuple(
            (f.name, f.default_factory) for f in all_fields if f.default_factory is not dataclasses.MISSING
        )
        # all positional and nothing else to set: one dict update; -1: never
        everything = tuple(self.template)
        self.names = self.positional if not self.kwonly and everything == self.positional else ()
        self.fast = len(self.names) if self.names == everything else -1
        self.qualname = f"{cls.__qualname__}.__init__"
        self.signature: inspect.Signature | None = None
        self.bind = _bind


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_FACTORY = _Marker("<factory>")
_REQUIRED = _Marker("<required>")


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _record_init(self: Any, /, *args: Any, **kwargs: Any) -> None:
    """The ``__init__`` of every :func:`record` class: the generated one's binding and errors.

    Its body reads only ``self``, its spec and builtins: each class runs this code object under its
    own module's globals (see :func:`_own_init`).
    """
    spec = self.__record__
    if kwargs or len(args) != spec.fast:
        spec.bind(self.__dict__, spec, args, kwargs)
    else:
        self.__dict__.update(zip(spec.names, args, strict=False))


def _record_init_post(self: Any, /, *args: Any, **kwargs: Any) -> None:
    """:func:`_record_init`, then ``__post_init__()`` (a class that defines it gets this one)."""
    spec = self.__record__
    if kwargs or len(args) != spec.fast:
        spec.bind(self.__dict__, spec, args, kwargs)
    else:
        self.__dict__.update(zip(spec.names, args, strict=False))
    self.__post_init__()


def _bind(values: dict[str, Any], spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    n = len(args)
    if kwargs and not (spec.params.issuperset(kwargs) and spec.taken[min(n, spec.npos)].isdisjoint(kwargs)):
        raise _bad_keyword(spec, n, kwargs)
    if n > spec.npos:
        raise _too_many(spec, n, kwargs)
    # defaults and markers first, in field order; the arguments replace them in place
    values.update(spec.template)
    if args:
        values.update(zip(spec.positional, args, strict=False))
    if kwargs:
        values.update(kwargs)
    if (
        spec.required
        and n + len(kwargs) < spec.count
        and (kwargs or n < spec.npos_required or spec.kwonly_required)
    ):
        _refuse_missing(spec, values)
    for name, factory in spec.factories:  # not given, or init=False: still the marker
        if values[name] is _FACTORY:
            values[name] = factory()


def _refuse_missing(spec: _Spec, values: dict[str, Any]) -> None:
    """A required argument not given is a TypeError in CPython's words, positional ones first."""
    for kind, kw_only in (("positional", False), ("keyword-only", True)):
        missing = [name for name, kw in spec.required if kw is kw_only and values[name] is _REQUIRED]
        if missing:
            raise TypeError(
                f"{spec.qualname}() missing {len(missing)} required {kind} "
                f"argument{'s' if len(missing) > 1 else ''}: {_names(missing)}"
            )


def _bad_keyword(spec: _Spec, n: int, kwargs: dict[str, Any]) -> TypeError:
    taken = spec.taken[min(n, spec.npos)]
    for key in kwargs:  # the first bad one in call order, as CPython reports it
        if key in taken or (key == "self" and key not in spec.params):
            return TypeError(f"{spec.qualname}() got multiple values for argument {key!r}")
        if key not in spec.params:
            return TypeError(
                f"{spec.qualname}() got an unexpected keyword argument {key!r}{_suggestion(spec, key)}"
            )
    raise AssertionError("no bad keyword")  # pragma: no cover - only called with one


def _suggestion(spec: _Spec, key: str) -> str:
    """Python 3.13's ``. Did you mean 'name'?`` from the interpreter's own matcher (none before 3.13)."""
    try:
        import _suggestions  # type: ignore[import-not-found]
    except ImportError:
        return ""
    self_name = "__dataclass_self__" if "self" in spec.params else "self"
    kwonly = [name for name in spec.template if name in spec.kwonly]
    found = _suggestions._generate_suggestions([self_name, *spec.positional, *kwonly], key)
    return f". Did you mean {found!r}?" if found else ""


def _too_many(spec: _Spec, given: int, kwargs: dict[str, Any]) -> TypeError:
    # CPython's wording: self counts, as in the generated ``def __init__(self, ...)``
    count = len(spec.positional) + 1
    if spec.defaults:
        takes, plural = f"from {count - spec.defaults} to {count}", True
    else:
        takes, plural = str(count), count != 1
    kwonly = sum(1 for key in kwargs if key in spec.kwonly)
    extra = (
        f" positional arguments (and {kwonly} keyword-only argument{'s' if kwonly != 1 else ''})"
        if kwonly
        else ""
    )
    return TypeError(
        f"{spec.qualname}() takes {takes} positional argument{'s' if plural else ''} but {given + 1}{extra} were given"
    )


def _names(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _signature(cls: type) -> inspect.Signature:
    """What ``inspect.signature`` shows for the generated ``__init__`` (``<factory>`` included)."""
    factory_marker = getattr(dataclasses, "_HAS_DEFAULT_FACTORY", inspect.Parameter.empty)
    parameters = []
    for kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
        for f in fields(cls):  # type: ignore[arg-type]
            if not f.init or (kind is inspect.Parameter.KEYWORD_ONLY) != f.kw_only:
                continue
            if f.default_factory is not dataclasses.MISSING:
                default = factory_marker
            else:
                default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            parameters.append(inspect.Parameter(f.name, kind, default=default, annotation=f.type))
    return inspect.Signature(parameters, return_annotation=None)


def _own_init(cls: type, shared: Callable[..., None]) -> Callable[..., None]:
    """The shared code as the class's own ``__init__``: a new function object, nothing compiled.

    Like the generated one it has the class's qualname and the fields' annotations in the defining
    module's globals, so ``typing.get_type_hints(cls.__init__)`` reads the fields' types (a public
    class's ``__module__`` is renamed to ``torchscope`` later, which would resolve nothing).
    """
    module = sys.modules.get(cls.__module__)
    init = types.FunctionType(shared.__code__, vars(module) if module is not None else globals(), "__init__")
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = shared.__doc__
    init.__annotations__ = {f.name: f.type for f in fields(cls) if f.init}  # type: ignore[arg-type]
    init.__annotations__["return"] = None
    return init


_INIT_CODES = (_record_init.__code__, _record_init_post.__code__)


@dataclass_transform(
    frozen_default=True, eq_default=False, field_specifiers=(dataclasses.field, dataclasses.Field)
)
def record(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True, eq=False, repr=False)`` for a :class:`Frozen` subclass, compiled once.

    The class is a dataclass (``fields()``, ``replace()``, ``asdict()`` and ``__match_args__`` as
    usual) whose ``__init__``, ``__setattr__`` and ``__delattr__`` are shared functions that do what
    the generated ones do: the same binding, defaults, ``default_factory``, ``__post_init__`` and
    ``TypeError`` messages, assignment refused with ``FrozenInstanceError``. No function is compiled
    for the class, so importing it costs a fraction of a frozen dataclass. A subclass of a record
    is decorated with ``@record`` too (``dataclass`` refuses a frozen subclass of a non-frozen one,
    and ``__dataclass_params__`` says ``frozen=False``, ``init=False``).

    >>> @record
    ... class Point(Frozen):
    ...     x: int
    ...     y: int = 0
    >>> Point(1), Point(1) == Point(1, 0)
    (Point(x=1, y=0), True)
    """
    if not issubclass(cls, Frozen):
        raise TypeError(f"@record needs a Frozen subclass (Frozen, Record or Result), got {cls.__qualname__}")
    for name in ("__setattr__", "__delattr__"):
        if name in cls.__dict__:
            raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")  # dataclass's words
    documented = bool(cls.__dict__.get("__doc__"))
    dataclass(init=False, eq=False, repr=False)(cls)
    initvar = getattr(dataclasses, "_FIELD_INITVAR", None)  # what fields() leaves out besides ClassVars
    if initvar is not None and any(
        getattr(f, "_field_type", None) is initvar for f in cls.__dataclass_fields__.values()
    ):
        raise TypeError(
            f"@record does not take InitVar fields ({cls.__qualname__}); use @dataclass(frozen=True)"
        )
    if cls.__dictoffset__ == 0:  # type: ignore[attr-defined]
        raise TypeError(f"@record needs instances with a __dict__; {cls.__qualname__} has __slots__ only")
    seen_default = False
    for f in fields(cls):  # type: ignore[arg-type]
        if f.init and not f.kw_only:  # what the generated __init__ refuses: it could not be written
            if not _no_default(f):
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
    cls.__record__ = _Spec(cls)  # type: ignore[attr-defined]
    if "__init__" not in cls.__dict__:  # as dataclass: an __init__ of the class's own is kept
        cls.__init__ = _own_init(cls, _record_init_post if hasattr(cls, "__post_init__") else _record_init)  # type: ignore[method-assign]
    if not documented:  # dataclass wrote the docstring from the signature of no __init__ yet
        cls.__doc__ = cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
    return cls


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
