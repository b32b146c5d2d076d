"""Faster construction of the frozen dataclasses built on every check (passes/slotinit.py):
the classes behave exactly as ``@dataclass`` declared them, and the objects are equal."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from passgate.passes.format import Claims
from passgate.passes.slotinit import fast_frozen_init, slot_factory
from passgate.passes.verdict import Binding, Reason, Result, Verdict


@dataclasses.dataclass(frozen=True, slots=True)
class _Reference:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


@fast_frozen_init
@dataclasses.dataclass(frozen=True, slots=True)
class _Fast:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


def test_same_parameters_defaults_and_values_as_the_dataclass_init() -> None:
    assert list(inspect.signature(_Fast).parameters) == ["a", "b", "c"]
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1,), {}), ((1, "x"), {}), ((1,), {"c": (2,)}), ((), {"a": 3, "b": "y"})]
    for args, kwargs in cases:
        fast, ref = _Fast(*args, **kwargs), _Reference(*args, **kwargs)
        assert dataclasses.astuple(fast) == dataclasses.astuple(ref)
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, "x", (), 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, a=2)  # type: ignore[misc]


def test_still_frozen_replaceable_comparable_hashable() -> None:
    v = _Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.a = 2  # type: ignore[misc]
    assert dataclasses.replace(v, b="z") == _Fast(1, "z")
    assert v == _Fast(1) and hash(v) == hash(_Fast(1)) and v != _Fast(2)
    assert repr(v) == "_Fast(a=1, b='b', c=())"


def test_verdict_and_claims_keep_every_field_and_default() -> None:
    v = Verdict(Result.ACCEPT, Reason.VALID, 5)
    assert (v.detail, v.remaining_s, v.zones, v.binding, v.live_t) == ("", None, (), None, None)
    full = Verdict(Result.DENY, Reason.EXPIRED, 1, "d", 2, "p", "h", "k", "i", ("z",), 3, 4,
                   b"id", Binding.LIVE, b"live", 6)
    assert [getattr(full, f.name) for f in dataclasses.fields(Verdict)] == [
        Result.DENY, Reason.EXPIRED, 1, "d", 2, "p", "h", "k", "i", ("z",), 3, 4, b"id",
        Binding.LIVE, b"live", 6]
    assert dataclasses.replace(full, detail="e").detail == "e"
    with pytest.raises(dataclasses.FrozenInstanceError):
        full.reason = Reason.VALID  # type: ignore[misc]
    c = Claims("Iss", b"x" * 12, 1, 2, 0, 3, ("z",))
    assert (c.hint, c.holder_key) == (None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.expires = 5  # type: ignore[misc]


def test_the_slot_factory_builds_the_same_frozen_object() -> None:
    make = slot_factory(_Reference)
    for args in [(1,), (1, "x"), (1, "x", (2, 3))]:
        built, ref = make(*args), _Reference(*args)
        assert type(built) is _Reference
        assert built == ref and hash(built) == hash(ref) and repr(built) == repr(ref)
    assert make(a=4, c=(5,)) == _Reference(4, c=(5,))
    built = make(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.b
    assert dataclasses.replace(built, b="y") == _Reference(1, "y")
    with pytest.raises(TypeError):
        make()
    with pytest.raises(TypeError):
        make(1, "x", (), 4)


def test_verdict_and_claims_factories_match_the_classes() -> None:
    from passgate.passes.format import _claims
    from passgate.passes.verify import _verdict

    args = (Result.DENY, Reason.EXPIRED, 1, "d", 2, "p", "h", "k", "i", ("z",), 3, 4, b"id",
            Binding.LIVE, b"live", 6)
    assert _verdict(*args) == Verdict(*args) and type(_verdict(*args)) is Verdict
    assert _verdict(Result.ACCEPT, Reason.VALID, 5) == Verdict(Result.ACCEPT, Reason.VALID, 5)
    c = ("Iss", b"x" * 12, 1, 2, 0, 3, ("z",), "h", b"\x02" * 33)
    assert _claims(*c) == Claims(*c) and type(_claims(*c)) is Claims


def test_refuses_what_it_does_not_reproduce() -> None:
    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NotFrozen, NoSlots, Factory, PostInit):
        with pytest.raises(TypeError):
            fast_frozen_init(cls)
        with pytest.raises(TypeError):
            slot_factory(cls)
