"""The exact revocation list: a sorted, packed array of 16-byte pass-id digests.

Each entry is the first 16 bytes of SHA-256 of the pass id, so entries have one width and a
1,000,000-entry list is 16 MB in one numpy array (no per-entry Python objects). A lookup is
a binary search (``numpy.searchsorted``) plus an equality check: an exact answer, unlike a
Bloom filter (a 128-bit digest collision is not a realistic event). Measured in
``bench/verify.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import TrustError

DIGEST_LEN = 16
_DTYPE = np.dtype(f"S{DIGEST_LEN}")


def digest(pass_id: bytes) -> bytes:
    return hashlib.sha256(pass_id).digest()[:DIGEST_LEN]


class RevocationList:
    def __init__(self, sorted_digests: np.ndarray) -> None:
        self._arr = sorted_digests

    @classmethod
    def empty(cls) -> RevocationList:
        return cls(np.empty(0, dtype=_DTYPE))

    @classmethod
    def from_pass_ids(cls, pass_ids: Iterable[bytes]) -> RevocationList:
        packed = b"".join(digest(p) for p in pass_ids)
        return cls(np.unique(np.frombuffer(packed, dtype=_DTYPE)))

    @classmethod
    def from_packed(cls, data: bytes, where: str = "revocation list") -> RevocationList:
        """Load the binary form (sorted unique digests back to back), checking it is so."""
        if len(data) % DIGEST_LEN:
            raise TrustError(f"{where}: length is not a multiple of {DIGEST_LEN}")
        arr = np.frombuffer(data, dtype=_DTYPE)
        if len(arr) > 1 and not bool(np.all(arr[1:] > arr[:-1])):
            raise TrustError(f"{where}: entries are not sorted and unique")
        return cls(arr)

    @classmethod
    def from_text_file(cls, path: Path) -> RevocationList:
        """One pass id in hex per line; blank lines and ``#`` comments ignored."""
        ids = []
        try:
            with open(path, encoding="ascii") as f:
                for n, line in enumerate(f, 1):
                    line = line.split("#", 1)[0].strip()
                    if not line:
                        continue
                    try:
                        ids.append(bytes.fromhex(line))
                    except ValueError:
                        raise TrustError(f"{path}:{n}: not a hex pass id") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustError(f"{path}: cannot read revocation list: {exc}") from None
        return cls.from_pass_ids(ids)

    def packed(self) -> bytes:
        return self._arr.tobytes()

    def __len__(self) -> int:
        return len(self._arr)

    @property
    def nbytes(self) -> int:
        return self._arr.nbytes

    def __contains__(self, pass_id: object) -> bool:
        if not isinstance(pass_id, bytes) or not len(self._arr):
            return False
        key = np.frombuffer(digest(pass_id), dtype=_DTYPE)
        i = int(np.searchsorted(self._arr, key[0]))
        return i < len(self._arr) and self._arr[i : i + 1].tobytes() == key.tobytes()
