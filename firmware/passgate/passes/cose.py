"""COSE_Sign1 (RFC 9052) with EdDSA, encoded and decoded strictly.

Only what passgate needs: one signer, the algorithm and key id in the *protected* header.
The unprotected header must be the empty map: it would decide nothing, and anything in it
could be changed without breaking the signature, giving a second valid byte string for the
same pass. Decoding demands deterministic CBOR (cbor2's ``canonical=True``: shortest forms,
definite lengths, map keys length-first then bytewise), checked by re-encoding, which also
rejects duplicate keys, over-long integers, indefinite lengths and trailing bytes. With
that, every accepted pass has exactly one encoding.

Rules kept here (``docs/pass-format.md`` section 2, spec version 1.1):

- no CBOR tag anywhere but the one outer tag 18: tags cbor2 would interpret are refused
  while decoding, any other tag is refused by the exact type checks and by :func:`canonical`;
- the protected header holds labels 1 (alg) and 4 (kid), and optionally 2 (crit), nothing
  else; crit is a non-empty array of distinct labels (integers or text), and a crit entry
  other than 1 or 4 is ``unsupported`` (checked first: it names a feature we lack);
- alg: an integer other than -8, or a text (both are COSE algorithm types) is
  ``unsupported``; missing or any other type is ``malformed``; kid is an 8-byte string.

The decode side re-encodes with the small :func:`canonical` below instead of
``cbor2.dumps``: cbor2's encoder costs 3-7 us per call here, several times the decode, and
the verifier spends ~22 us besides the signature check (``bench/verify.py``).
:func:`canonical` only knows the types a pass can hold (ints, byte and text strings, arrays,
maps, bools, null); anything else, floats and tags included, is malformed.
``tests/test_cose.py`` checks it equals ``cbor2.dumps(canonical=True)`` on generated values,
and the encode side and :func:`sig_structure` against the cose-wg EdDSA examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import NoReturn

import cbor2

from passgate.errors import PassFormatError
from passgate.passes.wire import read_sign1

TAG_SIGN1 = 18
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
ALG_EDDSA = -8
KID_LEN = 8
SIG_LEN = 64
# Labels a crit array may name: the headers this format has. crit itself is not one.
UNDERSTOOD_HEADERS = frozenset({HDR_ALG, HDR_KID})
ALLOWED_HEADERS = frozenset({HDR_ALG, HDR_CRIT, HDR_KID})


def malformed(detail: str) -> PassFormatError:
    return PassFormatError("malformed", detail)


def unsupported(detail: str) -> PassFormatError:
    return PassFormatError("unsupported", detail)


def dumps(obj: object) -> bytes:
    """Deterministic CBOR: shortest forms, definite lengths, map keys in canonical order."""
    return cbor2.dumps(obj, canonical=True)


def _make_head(major: int, n: int) -> bytes:
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


# Heads for arguments below 256 (string lengths, small ints), made once: ~14 heads per pass.
_SMALL_HEADS = tuple(tuple(_make_head(major, n) for n in range(256)) for major in range(8))


def head(major: int, n: int) -> bytes:
    """The shortest CBOR head for major type ``major`` and argument ``n`` (0 <= n < 2**64)."""
    return _SMALL_HEADS[major][n] if n < 256 else _make_head(major, n)


_SIMPLE = {False: b"\xf4", True: b"\xf5"}


def _length_first(item: tuple[bytes, bytes]) -> tuple[int, bytes]:
    """Map order of cbor2's canonical mode: shorter encoded key first, then bytewise."""
    return len(item[0]), item[0]


def canonical(obj: object, tags: bool = True) -> bytes:
    """Deterministic CBOR of a decoded value, as ``cbor2.dumps(obj, canonical=True)`` gives it.

    Raises :class:`PassFormatError` (malformed) for floats, and for tags when ``tags`` is
    false (a pass's protected header; the bundle and the sync protocol carry tags).
    """
    # Exact types: a bool is not an int here (``type(obj) is X`` also narrows for mypy).
    if type(obj) is bytes:
        return head(2, len(obj)) + obj
    if type(obj) is int:
        if 0 <= obj < 2**64:
            return head(0, obj)
        if -(2**64) <= obj < 0:
            return head(1, -1 - obj)
        raise malformed("integer out of range")
    if type(obj) is str:
        b = obj.encode("utf-8")
        return head(3, len(b)) + b
    if type(obj) is list or type(obj) is tuple:
        return head(4, len(obj)) + b"".join([canonical(v, tags) for v in obj])
    if isinstance(obj, Mapping):  # dict included
        items = [(canonical(k, tags), canonical(v, tags)) for k, v in obj.items()]
        items.sort(key=_length_first)
        return head(5, len(items)) + b"".join([k + v for k, v in items])
    if type(obj) is cbor2.CBORTag:
        if not tags:
            raise malformed(f"CBOR tag {obj.tag} (no tag is allowed but the outer 18)")
        return head(6, obj.tag) + canonical(obj.value, tags)
    if type(obj) is bool:
        return _SIMPLE[obj]
    if obj is None:
        return b"\xf6"
    raise malformed(f"unexpected CBOR item ({type(obj).__name__})")


def _refuse_tag(immutable: object) -> NoReturn:  # cbor2 calls it with one argument
    raise malformed("semantic CBOR tag not allowed")


# Tags cbor2 would turn into Python objects (dates, bignums, decimals, regexes, sets, shared
# and string references...; tests/test_cose.py finds cbor2's list and checks this holds it).
# Every other tag stays a CBORTag and fails the exact type checks. No passgate structure
# holds a tag (spec: none but the outer 18), and shared references (28/29)
# let a few hundred bytes expand into billions of items when re-encoded (measured: 13 s for
# a 253-byte input), so they are refused while decoding, before any of that happens.
_REFUSED_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260,
                 261, 1004, 43000, 55799)
_SEMANTIC_DECODERS: dict[int, Callable[[bool], NoReturn]] = dict.fromkeys(
    _REFUSED_TAGS, _refuse_tag
)


def loads(data: bytes, what: str) -> object:
    """Decode one CBOR item with duplicates, indefinite lengths and semantic tags refused.

    Does not check that ``data`` is deterministic CBOR or has no trailing bytes: callers do,
    with :func:`loads_strict` or by comparing with the encoding they expect.
    """
    try:
        return cbor2.loads(data, allow_duplicate_keys=False, allow_indefinite=False, max_depth=8,
                           semantic_decoders=_SEMANTIC_DECODERS)
    except Exception as exc:  # cbor2 raises several types on hostile input; all mean malformed
        raise malformed(f"{what}: not valid CBOR ({type(exc).__name__})") from None


def not_deterministic(what: str) -> PassFormatError:
    return malformed(f"{what}: not deterministic CBOR (duplicates, padding or trailing bytes)")


def loads_strict(data: bytes, what: str, tags: bool = True) -> object:
    """Decode one CBOR item that must be exactly ``data`` in deterministic encoding.

    ``tags=False`` also refuses every tag (the pass format: no tag but the outer 18).
    """
    obj = loads(data, what)
    try:
        again = canonical(obj, tags)
    except PassFormatError as exc:
        raise malformed(f"{what}: {exc.detail}") from None
    except RecursionError:  # tags nest without limit in cbor2; stay an answer, not a crash
        raise malformed(f"{what}: nested too deeply") from None
    if again != data:
        raise not_deterministic(what)
    return obj


_PLAIN = frozenset({int, str, bytes, bool, type(None)})  # cbor2's plain encoding is canonical
_TEXT_KEY_ORDERS: dict[tuple[object, ...], bool] = {}  # a protocol has a few map shapes: memo


def _keys_in_order(keys: tuple[object, ...]) -> bool:
    """True when ``keys`` (a map's, in its order) are in canonical order: by their encodings,
    shorter first, then bytewise. Remembered for all-text key tuples only: 1, 1.0 and True are
    equal as dict keys but encode apart, so another tuple could take their answer."""
    known = _TEXT_KEY_ORDERS.get(keys)
    if known is not None:
        return known
    try:
        encoded = [canonical(k) for k in keys]
    except PassFormatError:
        return False
    known = encoded == sorted(encoded, key=lambda k: (len(k), k))
    if len(_TEXT_KEY_ORDERS) < 256 and all(type(k) is str for k in keys):
        _TEXT_KEY_ORDERS[keys] = known  # bounded: odd input cannot grow it
    return known


def plainly_canonical(obj: object) -> bool:
    """True when every map in ``obj`` lists its keys in canonical order and every item is a
    type :func:`canonical` encodes as cbor2's plain encoder does (then ``cbor2.dumps(obj)``
    is its deterministic encoding, without sorting); False = not sure."""
    if type(obj) in _PLAIN:
        return True
    if type(obj) is list:
        if _PLAIN.issuperset(map(type, obj)):
            return True
        same = _maps_of_one_shape(obj) if len(obj) > 1 else None
        return same if same is not None else all(map(plainly_canonical, obj))
    if type(obj) is not dict:
        return False  # tags, floats, simple values...: the exact check decides
    if not _keys_in_order(tuple(obj)):
        return False
    values = obj.values()
    if _PLAIN.issuperset(map(type, values)):
        return True
    # Only the nested items walked (a batch's row: its flags list among scalars).
    return all(map(plainly_canonical, [v for v in values if type(v) not in _PLAIN]))


_DICT = frozenset({dict})
_STR = frozenset({str})
_LIST = frozenset({list})


def _maps_of_one_shape(maps: list[dict[object, object]]) -> bool | None:
    """:func:`plainly_canonical` of a list of maps that all have the same text keys in the
    same order (a batch's rows, a reply's results), a column at a time in C loops: the key
    order is checked once, each column's types with one set. None when the maps are not of
    one shape (the caller then walks them one by one). Per row of a batch, this is a third
    of the walk map by map (docs/collector.md, "Ingest cost, measured")."""
    if not _DICT.issuperset(map(type, maps)):
        return None
    shapes: set[tuple[object, ...]] = set(map(tuple, maps))
    if len(shapes) != 1:
        return None
    keys = shapes.pop()
    # All text: then every map's keys are these (no other decoded value equals a str).
    if not _STR.issuperset(map(type, keys)):
        return None
    if not _keys_in_order(keys):
        return False
    for column in zip(*map(dict.values, maps), strict=True):
        kinds = set(map(type, column))
        if _PLAIN.issuperset(kinds):
            continue
        if kinds == _LIST and _PLAIN.issuperset(map(type, chain.from_iterable(column))):
            continue  # lists of plain items (a row's flags)
        if not all(map(plainly_canonical, column)):
            return False
    return True


def loads_canonical(data: bytes, what: str) -> object:
    """:func:`loads_strict` at a fraction of its cost on the common case: the exact check
    re-encodes the decoded value in Python; when :func:`plainly_canonical` holds, cbor2's C
    encoder writes that encoding, so one comparison with ``data`` proves it. Anything else
    goes to the exact check, which decides and words the refusal (the collector's requests,
    the agent's replies: tests/test_collector_ingest_fast.py, tests/test_sync_reply.py)."""
    obj = loads(data, what)  # nesting is bounded there (max_depth), so is the walk
    if plainly_canonical(obj) and cbor2.dumps(obj) == data:
        return obj
    return loads_strict(data, what)


def dumps_plain(obj: object) -> bytes:
    """:func:`dumps` without its sorting when ``obj`` is already in canonical key order
    (:func:`plainly_canonical`): the same bytes at a fraction of the cost."""
    return cbor2.dumps(obj) if plainly_canonical(obj) else dumps(obj)


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The ToBeSigned bytes of RFC 9052 section 4.4 for a COSE_Sign1.

    ``["Signature1", protected, external_aad, payload]`` in deterministic CBOR, written out
    directly (the first 11 bytes are the array head and the context string): it is on the
    verify path. Equal to ``dumps`` of that array, checked in ``tests/test_cose.py``.
    """
    return b"".join((
        b"\x84\x6aSignature1",
        head(2, len(protected)), protected,
        head(2, len(external_aad)), external_aad,
        head(2, len(payload)), payload,
    ))


def encode_sign1(
    payload: bytes,
    sign: Callable[[bytes], bytes],
    protected: dict[int, object],
    unprotected: dict[int, object] | None = None,
) -> bytes:
    """Build a tagged COSE_Sign1; ``sign`` maps the ToBeSigned bytes to a signature.

    ``unprotected`` exists to reproduce other COSE examples; passgate passes leave it empty.
    """
    prot = dumps(protected)
    signature = sign(sig_structure(prot, payload))
    return dumps(cbor2.CBORTag(TAG_SIGN1, [prot, unprotected or {}, payload, signature]))


@dataclass(frozen=True, slots=True)
class Sign1:
    protected: bytes
    kid: bytes
    payload: bytes
    signature: bytes
    # The ToBeSigned bytes when the reader already cut them from the input (wire.py); a
    # cache of sig_structure(protected, payload), so not part of equality.
    tbs: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def to_be_signed(self) -> bytes:
        return self.tbs if self.tbs is not None else sig_structure(self.protected, self.payload)


_SIGN1_HEAD = b"\xd2\x84"  # tag 18, array of 4
_SIG_HEAD = head(2, SIG_LEN)
# The protected header every passgate issuer writes: {1: -8, 4: h'<8-byte kid>'}.
_PLAIN_PROTECTED = b"\xa2\x01\x27\x04\x48"
_PLAIN_PROTECTED_LEN = len(_PLAIN_PROTECTED) + KID_LEN


def decode_sign1(data: bytes) -> Sign1:
    """Parse a passgate COSE_Sign1 or raise :class:`PassFormatError` saying why."""
    fixed = read_sign1(data) if type(data) is bytes else None
    if fixed is not None:  # the layout every issuer writes, read without cbor2 (wire.py)
        return Sign1(*fixed)
    return decode_sign1_general(data)


def decode_sign1_general(data: bytes) -> Sign1:
    """:func:`decode_sign1` through cbor2, for any input: the reference the fast reader
    (``wire.read_sign1``) must agree with, and the path that names every refusal."""
    obj = loads(data, "COSE")
    if type(obj) is not cbor2.CBORTag or obj.tag != TAG_SIGN1:
        raise malformed("not a tagged COSE_Sign1 (CBOR tag 18)")
    items = obj.value
    if type(items) not in (list, tuple) or len(items) != 4:  # cbor2 6 gives tag content as tuple
        raise malformed("COSE_Sign1 must be an array of 4")
    prot, unprot, payload, signature = items
    if type(prot) is not bytes or type(payload) is not bytes:
        raise malformed("protected header and payload must be byte strings")
    if not isinstance(unprot, Mapping):
        raise malformed("unprotected header must be a map")
    if unprot:
        raise malformed("unprotected header must be empty (it is not signed: alg and kid "
                        "belong in the protected header)")
    if type(signature) is not bytes or len(signature) != SIG_LEN:
        raise malformed("signature must be 64 bytes")
    # The one deterministic encoding of this structure (what loads_strict would demand).
    expected = b"".join((_SIGN1_HEAD, head(2, len(prot)), prot, b"\xa0",
                         head(2, len(payload)), payload, _SIG_HEAD, signature))
    if expected != data:
        raise not_deterministic("COSE")
    if len(prot) == _PLAIN_PROTECTED_LEN and prot.startswith(_PLAIN_PROTECTED):
        # The header as issued; exactly what _protected_kid accepts for these bytes, faster.
        return Sign1(protected=prot, kid=prot[len(_PLAIN_PROTECTED):], payload=payload,
                     signature=signature)
    return Sign1(protected=prot, kid=_protected_kid(prot), payload=payload, signature=signature)


def _protected_kid(prot: bytes) -> bytes:
    """Check the protected header (rules in the module docstring) and return its kid."""
    header = loads_strict(prot, "protected header", tags=False) if prot else {}
    if type(header) is not dict:
        raise malformed("protected header must be a map")
    if HDR_CRIT in header:
        crit = header[HDR_CRIT]
        if type(crit) not in (list, tuple) or not crit:
            raise malformed("crit must be a non-empty array")
        if any(type(label) not in (int, str) for label in crit):
            raise malformed("crit must list header labels (integers or text)")
        if len(set(crit)) != len(crit):
            raise malformed("crit lists a label twice")
        unknown_crit = [c for c in crit if c not in UNDERSTOOD_HEADERS]
        if unknown_crit:
            raise unsupported(f"unknown critical header {unknown_crit[0]!r}")
    # type() as well as the value: True == 1 and 4.0 == 4 in Python, not in CBOR.
    extra = [label for label in header
             if type(label) is not int or label not in ALLOWED_HEADERS]
    if extra:
        raise malformed(f"header label {extra[0]!r} not allowed (only 1 alg, 2 crit, 4 kid)")
    if HDR_ALG not in header:
        raise malformed("no algorithm in the protected header")
    alg = header[HDR_ALG]
    if type(alg) not in (int, str):
        raise malformed(f"algorithm must be an integer or text, not {type(alg).__name__}")
    if alg != ALG_EDDSA:
        raise unsupported(f"algorithm {alg!r} is not EdDSA (-8)")
    kid = header.get(HDR_KID)
    if type(kid) is not bytes or len(kid) != KID_LEN:
        raise malformed("protected header needs an 8-byte key id")
    return kid
