"""Enrolment: the collector learns this device's public key through a one-time token.

``passgate sync enrol --token T --collector URL`` records the request in ``enrolment.json``
in the sync agent's private folder (mode 0600: the token is a secret until it is used) and
tries at once. A first boot often has no network yet, so a transient failure is not an
error: the sync agent retries the enrolment before its first upload, with the same backoff
as everything else. Once enrolled, the token is erased from the file; a refused token is
kept out of further attempts (only an administrator's new token can help).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from passgate.errors import ConfigError, Refused
from passgate.sync.client import CollectorClient
from passgate.util.atomicfile import write_atomic

log = logging.getLogger(__name__)

ENROLMENT_FILE = "enrolment.json"


@dataclass(frozen=True, slots=True)
class Enrolment:
    """The device's enrolment with one collector.

    ``token`` is set only while enrolment is outstanding. ``refused`` holds the collector's
    error code (``bad_token``, ``already_enrolled``...) after a permanent refusal.
    """

    collector: str
    device: str
    fingerprint: str
    token: str | None = None
    enrolled_at: float | None = None
    refused: str | None = None

    @property
    def outstanding(self) -> bool:
        return self.enrolled_at is None and self.token is not None and self.refused is None


def load_enrolment(path: Path) -> Enrolment | None:
    """The recorded enrolment, or None if there is none. A damaged file is a ConfigError."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable enrolment record: {exc}") from None
    known = {f.name for f in fields(Enrolment)}
    try:
        return Enrolment(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise ConfigError(f"{path}: bad enrolment record: {exc}") from None


def save_enrolment(path: Path, enrolment: Enrolment) -> None:
    data = json.dumps(asdict(enrolment), sort_keys=True, indent=1).encode() + b"\n"
    write_atomic(Path(path), data, mode=0o600)


def attempt(client: CollectorClient, path: Path, enrolment: Enrolment, now: float) -> Enrolment:
    """Enrol now if outstanding; record and return the outcome.

    Raises ``Transient`` (record unchanged: try again later) or ``Refused`` (recorded, the
    token is dropped from further attempts).
    """
    if not enrolment.outstanding or enrolment.token is None:  # outstanding: a token is held
        return enrolment
    try:
        client.enrol(enrolment.token)
    except Refused as exc:
        done = replace(enrolment, refused=exc.code or f"HTTP {exc.status}")
        save_enrolment(path, done)
        log.error("enrolment refused by the collector: %s", exc.detail)
        raise
    done = replace(enrolment, token=None, enrolled_at=now)
    save_enrolment(path, done)
    log.info("enrolled with %s as %s", enrolment.collector, enrolment.device)
    return done
