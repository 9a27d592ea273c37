"""Frozen dataclasses made cheaply: :class:`Frozen` (shared ``==``, ``hash()``, ``repr()``, frozen
attributes) and :func:`record`, a frozen dataclass with one shared ``__init__`` instead of functions
compiled per class at import. :mod:`torchscope._result` builds the result protocol on them.
"""

from __future__ import annotations

import dataclasses
import inspect
import reprlib
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, fields
from typing import Any, ClassVar, TypeVar

__all__ = ["Frozen", "record"]

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10: type checkers read the 3.11 branch

    def dataclass_transform(**kwargs: Any) -> Callable[[Any], Any]:
        return lambda f: f


_T = TypeVar("_T")
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
