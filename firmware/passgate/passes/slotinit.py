"""A faster ``__init__`` for the frozen slotted dataclasses built on every check.

Rules kept: the class stays exactly the dataclass it was declared as (frozen: assigning a
field still raises ``FrozenInstanceError``; ``dataclasses.replace``, ``fields``, equality,
``repr`` and hashing unchanged), and the new ``__init__`` has the same parameters, order and
defaults as the one ``@dataclass`` wrote. Only fields with ``init=True`` and no
``default_factory``, and classes without ``__post_init__``, are handled; anything else is a
``TypeError`` at import, not a silent difference.

Why: a frozen dataclass's ``__init__`` sets each field with ``object.__setattr__``, which
looks the name up through the class's MRO every time: ~0.25 us a field, 4 us for the 16 of a
:class:`~passgate.passes.verdict.Verdict`, the largest single cost of ``Verifier.check``
besides the signature (``bench/verify.py``). This one calls each slot's own descriptor
(``member_descriptor.__set__``, bound once at import): the same store, about half the time.
The source is generated, as ``dataclasses`` generates its own, because a loop over the fields
would cost what it saves.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_frozen_init(cls: type[T]) -> type[T]:
    """Replace the ``__init__`` of frozen slotted dataclass ``cls`` (apply above ``@dataclass``)."""
    target: Any = cls  # what follows is dataclass machinery mypy cannot follow on a TypeVar
    params = getattr(target, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: a frozen dataclass with slots=True is needed")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: __post_init__ is not supported")
    names: dict[str, Any] = {}
    args, body = [], []
    for i, f in enumerate(dataclasses.fields(target)):
        if not f.init or f.default_factory is not dataclasses.MISSING or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain positional fields supported")
        setter = cls.__dict__[f.name].__set__  # the slot's member descriptor
        names[f"_set{i}"] = setter
        if f.default is dataclasses.MISSING:
            args.append(f.name)
        else:
            names[f"_dflt{i}"] = f.default
            args.append(f"{f.name}=_dflt{i}")
        body.append(f"    _set{i}(self, {f.name})")
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, names)  # noqa: S102 - generated from the field names only, as dataclasses does
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = target.__init__.__doc__
    target.__init__ = init
    return cls
