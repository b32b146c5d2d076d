"""The issuer's side: sign passes, one at a time or in batches.

Issuing runs at the issuer's office, never on a checkpoint. The private key is loaded once
and used through ``cryptography``. Every pass is checked against the format's limits before
it is signed, and one that would be over the 1,024 characters a checkpoint reads is refused
(``PassFormatError``; ``passgate issue`` reports it as a usage error, exit 2).
"""

from __future__ import annotations

import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from passgate.errors import KeyFileError, PassFormatError, UsageError
from passgate.passes import format as passformat
from passgate.passes.format import Claims
from passgate.passes.keys import kid_of, load_private, raw_public
from passgate.passes.purposes import PurposeTable
from passgate.util.timefmt import parse_duration, parse_instant, span

PASS_ID_LEN = 12  # 96 random bits: the format's minimum, which keeps a pass in QR version 8-M


@dataclass(frozen=True)
class Issuer:
    key: Ed25519PrivateKey
    name: str
    purposes: PurposeTable = field(default_factory=PurposeTable.default)

    @property
    def kid(self) -> bytes:
        return kid_of(raw_public(self.key))

    @classmethod
    def from_key_file(cls, key_path: Path, name: str | None = None,
                      purposes: PurposeTable | None = None) -> Issuer:
        """Load ``issuer.key``; the issuer name comes from ``name`` or ``issuer.toml`` beside it."""
        key_path = Path(key_path)
        key = load_private(key_path)
        if name is None:
            meta = key_path.with_suffix(".toml")
            try:
                name = tomllib.loads(meta.read_text("utf-8")).get("name")
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise KeyFileError(
                    f"{meta}: cannot read issuer name ({exc}); pass --issuer NAME") from None
            if not isinstance(name, str):
                raise KeyFileError(f"{meta}: no 'name' for the issuer; pass --issuer NAME")
        return cls(key, name, purposes or PurposeTable.default())

    def issue(
        self,
        purpose: str,
        zones: list[str] | tuple[str, ...],
        not_before: int,
        duration_s: int,
        hint: str | None = None,
        issued_at: int | None = None,
        pass_id: bytes | None = None,
        holder_key: bytes | None = None,
    ) -> str:
        """Return the QR text of a new pass (raises ``PassFormatError`` for bad fields).

        ``purpose`` is a purpose id from the issuer's purpose table (``"shopping"``).
        ``issued_at`` is the time of signing, at most ``not_before`` (the format's
        iat <= nbf; ``passgate issue`` passes ``min(now, not_before)``); left out, it is
        ``not_before``. ``holder_key`` (a 33-byte compressed P-256 point, see
        :func:`passgate.passes.holder.parse_holder_key`) makes a holder-bound pass (claim 8).
        """
        known = self.purposes.get(purpose)
        if known is None:
            raise PassFormatError("malformed", f"unknown purpose {purpose!r}")
        claims = Claims(
            issuer=self.name,
            pass_id=pass_id if pass_id is not None else os.urandom(PASS_ID_LEN),
            not_before=int(not_before),
            expires=int(not_before) + int(duration_s),
            issued_at=int(issued_at if issued_at is not None else not_before),
            purpose=known.code,
            zones=tuple(zones),
            hint=hint or None,
            holder_key=holder_key,
        )
        return passformat.encode(claims, self.key.sign, self.kid)


def pass_fields(purposes: PurposeTable, purpose: str, zones: list[str], hint: str | None,
                start: str | None, duration: str | None) -> dict:
    """Turn command-line or CSV strings into ``Issuer.issue`` arguments (UsageError if bad):
    ``passgate issue`` and a batch CSV row read the same fields the same way.

    ``purposes`` is the issuer's PurposeTable: it gives the code, and the default duration
    (the purpose's maximum) when ``duration`` is empty.
    """
    known = purposes.get(purpose)
    if known is None:
        raise UsageError(f"unknown purpose {purpose!r}; known: {', '.join(p.id for p in purposes)}")
    now = int(time.time())
    try:
        not_before = parse_instant(start) if start else now
        duration_s = parse_duration(duration) if duration else known.max_s
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if duration_s is None:
        raise UsageError(f"--duration is required for open-ended purpose {purpose!r}")
    if duration_s <= 0:
        raise UsageError("duration must be positive")
    issued_at = min(now, not_before)  # the time of issue; a backdated start is its own iat
    if known.max_s is not None and duration_s > known.max_s:
        raise UsageError(f"duration {span(duration_s)} is longer than the {span(known.max_s)} "
                         f"allowed for {purpose}: every checkpoint would deny it")
    try:
        Claims("x", b"\0" * 12, not_before, not_before + duration_s, issued_at, known.code,
               tuple(zones), hint or None).validate()
    except PassFormatError as exc:
        raise UsageError(exc.detail) from None
    return dict(
        purpose=purpose, zones=zones, not_before=not_before, duration_s=duration_s, hint=hint,
        issued_at=issued_at,
    )
