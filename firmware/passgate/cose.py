"""COSE_Sign1 (RFC 9052) with EdDSA, encoded and decoded strictly.

Only what passgate needs: one signer, the algorithm and key id in the *protected* header.
The unprotected header must be the empty map: it would decide nothing, and anything in it
could be changed without breaking the signature, giving a second valid byte string for the
same pass.
Decoding demands deterministic CBOR (RFC 8949 section 4.2.1), checked by re-encoding, which
also rejects duplicate keys, over-long integers, indefinite lengths and trailing bytes.
Checked against the cose-wg EdDSA examples in ``tests/test_cose.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cbor2

from .errors import PassFormatError

TAG_SIGN1 = 18
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
ALG_EDDSA = -8
KID_LEN = 8
SIG_LEN = 64
UNDERSTOOD_HEADERS = frozenset({HDR_ALG, HDR_CRIT, HDR_KID})


def malformed(detail: str) -> PassFormatError:
    return PassFormatError("malformed", detail)


def unsupported(detail: str) -> PassFormatError:
    return PassFormatError("unsupported", detail)


def dumps(obj: object) -> bytes:
    """Deterministic CBOR: shortest forms, definite lengths, map keys in canonical order."""
    return cbor2.dumps(obj, canonical=True)


def _refuse_tag(decoder: object) -> object:
    raise ValueError("semantic CBOR tag not allowed")


# Tags cbor2 would turn into Python objects (dates, bignums, decimals, regexes, sets, shared
# and string references...). No passgate structure holds one, and shared references (28/29)
# let a few hundred bytes expand into billions of items when re-encoded (measured: 13 s for
# a 253-byte input), so they are refused while decoding, before any of that happens.
_REFUSED_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260,
                 261, 1004, 55799)
_SEMANTIC_DECODERS = {tag: _refuse_tag for tag in _REFUSED_TAGS}


def loads_strict(data: bytes, what: str) -> object:
    """Decode one CBOR item that must be exactly ``data`` in deterministic encoding."""
    try:
        obj = cbor2.loads(data, allow_duplicate_keys=False, allow_indefinite=False, max_depth=8,
                          semantic_decoders=_SEMANTIC_DECODERS)
        again = dumps(obj)
    except Exception as exc:  # cbor2 raises several types on hostile input; all mean malformed
        raise malformed(f"{what}: not valid CBOR ({type(exc).__name__})") from None
    if again != bytes(data):
        raise malformed(f"{what}: not deterministic CBOR (duplicates, padding or trailing bytes)")
    return obj


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The ToBeSigned bytes of RFC 9052 section 4.4 for a COSE_Sign1."""
    return dumps(["Signature1", protected, external_aad, payload])


def encode_sign1(
    payload: bytes,
    sign: Callable[[bytes], bytes],
    protected: dict,
    unprotected: dict | None = None,
) -> bytes:
    """Build a tagged COSE_Sign1; ``sign`` maps the ToBeSigned bytes to a signature."""
    prot = dumps(protected)
    signature = sign(sig_structure(prot, payload))
    return dumps(cbor2.CBORTag(TAG_SIGN1, [prot, unprotected or {}, payload, signature]))


@dataclass(frozen=True, slots=True)
class Sign1:
    protected: bytes
    kid: bytes
    payload: bytes
    signature: bytes

    @property
    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected, self.payload)


def decode_sign1(data: bytes) -> Sign1:
    """Parse a passgate COSE_Sign1 or raise :class:`PassFormatError` saying why."""
    obj = loads_strict(data, "COSE")
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != TAG_SIGN1:
        raise malformed("not a tagged COSE_Sign1 (CBOR tag 18)")
    items = obj.value
    if not isinstance(items, list | tuple) or len(items) != 4:  # cbor2 6 decodes tag content as tuple
        raise malformed("COSE_Sign1 must be an array of 4")
    prot, unprot, payload, signature = items
    if not isinstance(prot, bytes) or not isinstance(payload, bytes):
        raise malformed("protected header and payload must be byte strings")
    if not isinstance(unprot, Mapping):
        raise malformed("unprotected header must be a map")
    if unprot:
        raise malformed("unprotected header must be empty (it is not signed)")
    if not isinstance(signature, bytes) or len(signature) != SIG_LEN:
        raise malformed("signature must be 64 bytes")
    header = loads_strict(prot, "protected header") if prot else {}
    if not isinstance(header, Mapping):
        raise malformed("protected header must be a map")
    if any(type(label) not in (int, str) for label in header):
        raise malformed("header labels must be integers or text")
    crit = header.get(HDR_CRIT, [])
    if type(crit) not in (list, tuple) or (not crit and HDR_CRIT in header):
        raise malformed("crit must be a non-empty array")
    if any(type(label) not in (int, str) for label in crit):
        raise malformed("crit must list header labels (integers or text)")
    unknown_crit = [c for c in crit if c not in UNDERSTOOD_HEADERS]
    if unknown_crit:
        raise unsupported(f"unknown critical header {unknown_crit[0]!r}")
    if HDR_ALG not in header:
        raise malformed("no algorithm in the protected header")
    alg = header[HDR_ALG]
    if type(alg) is not int or alg != ALG_EDDSA:
        raise unsupported(f"algorithm {alg!r} is not EdDSA (-8)")
    kid = header.get(HDR_KID)
    if type(kid) is not bytes or len(kid) != KID_LEN:
        raise malformed("protected header needs an 8-byte key id")
    return Sign1(protected=prot, kid=kid, payload=payload, signature=signature)
