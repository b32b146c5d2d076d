"""Faster construction of the frozen slotted dataclasses built on every check.

Rules kept: the class stays exactly the dataclass it was declared as (frozen: assigning a
field still raises ``FrozenInstanceError``; ``dataclasses.replace``, ``fields``, equality,
``repr`` and hashing unchanged), and what is generated here takes the same parameters, in
the same order, with the same defaults as the ``__init__`` ``@dataclass`` wrote, and gives
an equal object. Only fields with ``init=True`` and no ``default_factory``, and classes
without ``__post_init__``, are handled; anything else is a ``TypeError`` at import, not a
silent difference.

Why: a frozen dataclass's ``__init__`` sets each field with ``object.__setattr__``, which
looks the name up through the class's MRO every time: ~0.25 us a field, 4 us for the 16 of a
:class:`~passgate.passes.verdict.Verdict`, the largest single cost of ``Verifier.check``
besides the signature (``bench/verify.py``). Two remedies:

- :func:`fast_frozen_init` replaces ``__init__`` with one that calls each slot's own
  descriptor (``member_descriptor.__set__``, bound once at import): the same store, about
  half the time. Every ``Verdict(...)``, ``replace`` and ``deny`` gets it.
- :func:`slot_factory` makes a function for the verifier's hot path that builds the object
  as an instance of a plain twin class with the very same slots (plain attribute stores,
  the interpreter's fastest), then sets its ``__class__`` to the frozen class, which CPython
  allows between classes of identical layout: about a third of the time of the dataclass's
  own ``__init__`` again. The twin is checked at import to give an equal object.

The source is generated, as ``dataclasses`` generates its own, because a loop over the fields
would cost what it saves. Tests: ``tests/test_slotinit.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _fields(cls: type) -> tuple[list[str], dict[str, Any], list[str]]:
    """(parameter list, default values by name, field names) of frozen slotted ``cls``."""
    target: Any = cls  # dataclass machinery mypy cannot follow on a plain type
    params = getattr(target, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: a frozen dataclass with slots=True is needed")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: __post_init__ is not supported")
    args, defaults, names = [], {}, []
    for i, f in enumerate(dataclasses.fields(target)):
        if not f.init or f.default_factory is not dataclasses.MISSING or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain positional fields supported")
        names.append(f.name)
        if f.default is dataclasses.MISSING:
            args.append(f.name)
        else:
            defaults[f"_dflt{i}"] = f.default
            args.append(f"{f.name}=_dflt{i}")
    return args, defaults, names


def _compile(source: str, namespace: dict[str, Any], name: str) -> Any:
    exec(source, namespace)  # noqa: S102 - made from the field names only, as dataclasses does
    return namespace[name]


def fast_frozen_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of frozen slotted dataclass ``cls`` (apply above ``@dataclass``)."""
    args, namespace, names = _fields(cls)
    body = []
    for i, name in enumerate(names):
        namespace[f"_set{i}"] = cls.__dict__[name].__set__  # the slot's member descriptor
        body.append(f"    _set{i}(self, {name})\n")
    source = f"def __init__(self, {', '.join(args)}):\n" + ("".join(body) or "    pass\n")
    init = _compile(source, namespace, "__init__")
    target: Any = cls
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = target.__init__.__doc__
    target.__init__ = init
    return cls


def slot_factory(cls: type[T]) -> Callable[..., T]:
    """A function taking ``cls``'s ``__init__`` parameters that returns an equal ``cls``."""
    args, namespace, names = _fields(cls)
    twin = type(f"_{cls.__name__}Slots", (), {"__slots__": cls.__dict__["__slots__"]})
    namespace.update(_new=object.__new__, _twin=twin, _cls=cls)
    body = "".join(f"    obj.{name} = {name}\n" for name in names)
    source = (f"def make({', '.join(args)}):\n    obj = _new(_twin)\n{body}"
              "    obj.__class__ = _cls\n    return obj\n")
    make: Callable[..., T] = _compile(source, namespace, "make")
    make.__qualname__ = f"slot_factory({cls.__qualname__})"
    probe = [object() for _ in names]  # distinct values: a field in the wrong slot shows
    built: Any = make(*probe)
    if type(built) is not cls or [getattr(built, n) for n in names] != probe:
        raise TypeError(f"{cls.__name__}: the slot twin does not build an equal object")
    return make
