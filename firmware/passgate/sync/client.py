"""The collector's HTTP API as the device sees it (docs/sync-protocol.md, version 1).

Requests to the collector are COSE_Sign1 envelopes signed by the device key around a
deterministic CBOR map; answers are CBOR. This module turns each exchange into a typed reply
or one of three errors, so the agent's policy reads as a table:

- :class:`Transient`: network failure, timeout, 5xx, 429 or a garbled answer. The request
  may or may not have been committed; sending it again is always safe (idempotent on
  (device id, nonce)). Retry with backoff.
- :class:`TooLarge`: 413, send fewer rows.
- :class:`Refused`: any other 4xx, or a collector URL that cannot be used. Retrying the same
  request cannot help; the rows stay pending and the agent shows a fault.

Every request names the device (``Passgate-Device``) and carries the clock's challenge when
``time_nonce`` gives one (``Passgate-Time-Nonce``; ``sync.hooks.TimeLink`` decides when).
Every answer that carries a ``Passgate-Time`` header, errors included, hands the decoded
token bytes to ``time_sink`` before anything else happens: a device that can only reach a
misconfigured collector still gets authenticated time.

Every answer's ``Passgate-Challenge`` is kept and echoed in the next signed batch: the
collector moves the device's ``last_seen`` only for a batch that carries a recent one, so a
captured batch replayed later cannot keep a dead checkpoint looking alive.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import cbor2

from passgate.bundle import DEFAULT_MAX_BYTES
from passgate.errors import (
    BundleTooLarge,
    PassFormatError,
    PassgateError,
    Refused,
    ReplyTooLarge,
    TooLarge,
    Transient,
)
from passgate.passes.cose import (
    ALG_EDDSA,
    HDR_ALG,
    HDR_KID,
    dumps_plain,
    encode_sign1,
    loads_canonical,
)
from passgate.passes.keys import kid_of
from passgate.sync.devicekey import DeviceKey
from passgate.sync.transport import HttpTransport, Request, Response, Transport

log = logging.getLogger(__name__)

PROTOCOL = 1
TIME_HEADER = "Passgate-Time"
DEVICE_HEADER = "Passgate-Device"
NONCE_HEADER = "Passgate-Time-Nonce"
CHAIN_CONTENT_TYPE = "application/x.passgate-delta-chain"  # passgate.bundle.delta's
CHALLENGE_HEADER = "Passgate-Challenge"
CHALLENGE_MAX = 64  # bytes; the collector's is 24, anything far longer is not one
# Row fields sent, exactly the journal's chained fields plus the chain (section 4, "Row map").
ROW_FIELDS = (
    "seq",
    "nonce",
    "t_ms",
    "clock_state",
    "verdict",
    "reason",
    "pass_hash",
    "kid",
    "purpose",
    "zone",
    "flags",
    "chain",
)


@dataclass(frozen=True, slots=True)
class RowResult:
    seq: int
    nonce: bytes
    status: str  # "stored", "duplicate", "rejected", or a newer value treated as not acknowledged
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BatchReply:
    results: tuple[RowResult, ...]
    bundle_version: int | None  # the newest bundle the collector publishes (a hint)


@dataclass(frozen=True, slots=True)
class BundleReply:
    data: bytes | None  # None: nothing newer than what is installed (304) or nothing published
    version: int | None
    published: bool = True  # False: the collector has no bundle at all (404 no_bundle)
    delta: bool = False  # True: ``data`` is a delta chain from ``have``, not a full bundle


def loads_reply(data: bytes, what: str) -> object:
    """A collector's answer as :func:`passgate.passes.cose.loads_strict` would give it, by its
    shortcut :func:`~passgate.passes.cose.loads_canonical` (a batch reply holds one small map
    per row, and the exact check re-encodes each in Python: half of the agent's CPU per row,
    profiled)."""
    return loads_canonical(data, what)


def _canonical_key(key: str) -> tuple[int, str]:
    return len(key), key  # for short ASCII text keys: shorter first, then bytewise


def in_key_order(fields: Mapping) -> dict:
    """``fields`` as a dict with its keys in canonical map order when they are short ASCII
    text (then :func:`dumps_payload` can skip sorting), else in their own order."""
    if all(type(k) is str and len(k) < 24 and k.isascii() for k in fields):
        return dict(sorted(fields.items(), key=lambda kv: _canonical_key(kv[0])))
    return dict(fields)


def dumps_payload(obj: object) -> bytes:
    """Deterministic CBOR of a request payload, as :func:`passgate.passes.cose.dumps` gives
    it, without cbor2's canonical sorting (6.4 us per row of a batch, measured: the agent's
    largest cost) when the maps are built in canonical key order (:func:`in_key_order`,
    ``_WIRE_ORDER``): :func:`~passgate.passes.cose.dumps_plain`."""
    return dumps_plain(obj)


# A row's keys in canonical map order, so a batch's rows need no sorting (dumps_payload).
_WIRE_ORDER = tuple(sorted(ROW_FIELDS, key=_canonical_key))


def row_to_wire(row: object) -> dict:
    """A journal row (``passgate.journal.schema.Row`` or a mapping) as a protocol row map,
    its keys in canonical order."""
    get = row.get if isinstance(row, Mapping) else (lambda k: getattr(row, k))
    out = {k: get(k) for k in _WIRE_ORDER}
    out["flags"] = sorted(set(out["flags"] or ()))
    return out


class CollectorClient:
    """Talks to one collector as one device. ``now`` gives the device clock (POSIX seconds)
    for the informational ``sent_at`` fields; ``time_sink`` receives raw time-token bytes."""

    def __init__(
        self,
        base_url: str,
        device_id: str,
        key: DeviceKey,
        *,
        now: Callable[[], float],
        transport: Transport | None = None,
        time_sink: Callable[[bytes], None] | None = None,
        time_nonce: Callable[[], bytes | None] | None = None,
        timeout: float = 30.0,
        max_bundle: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self._key = key
        self._kid = kid_of(key.public_raw)
        self._now = now
        self._transport = transport or HttpTransport()
        self._time_sink = time_sink
        self._time_nonce = time_nonce
        self.timeout = timeout
        self.max_bundle = max_bundle  # None: passgate.bundle.DEFAULT_MAX_BYTES
        self._challenge: bytes | None = None  # the latest Passgate-Challenge, echoed once

    # --- requests -------------------------------------------------------------------------

    def enrol(self, token: str) -> dict:
        """Register this device's public key with a one-time token (201 or 200 both fine)."""
        body = self._signed(
            {"t": "enrol", "device": self.device_id, "token": token, "pubkey": self._key.public_raw}
        )
        resp = self._send("POST", "/v1/enrol", body)
        return self._cbor_map(resp, "enrol reply")

    def upload(self, prev_chain: bytes, rows: Iterable[object], status: Mapping) -> BatchReply:
        """Send one batch (consecutive rows, oldest first) and return the per-row results."""
        wire_rows = [row_to_wire(r) for r in rows]
        fields = {
            "t": "batch",
            "device": self.device_id,
            "prev_chain": prev_chain,
            "rows": wire_rows,
            "status": in_key_order(status),
        }
        if self._challenge is not None:
            fields["challenge"] = self._challenge
        body = self._signed(fields)
        resp = self._send("POST", "/v1/batches", body)
        reply = self._cbor_map(resp, "batch reply")
        results = reply.get("results")
        if not isinstance(results, list | tuple) or len(results) != len(wire_rows):
            raise Transient("batch reply: results do not match the rows sent", resp.status)
        out = []
        for sent, got in zip(wire_rows, results, strict=True):
            if (
                not isinstance(got, Mapping)
                or got.get("seq") != sent["seq"]
                or got.get("nonce") != sent["nonce"]
                or not isinstance(got.get("status"), str)
            ):
                # Never mark a row on an answer that does not name it exactly.
                raise Transient("batch reply: a result does not name its row", resp.status)
            reason = got.get("reason")
            out.append(
                RowResult(
                    sent["seq"],
                    sent["nonce"],
                    got["status"],
                    reason if isinstance(reason, str) else None,
                )
            )
        version = reply.get("bundle_version")
        return BatchReply(tuple(out), version if isinstance(version, int) else None)

    def fetch_bundle(self, have: int | None, full: bool = False) -> BundleReply:
        """Download what is newer than ``have`` (conditional GET): a delta chain when the
        collector has one, else the full bundle; ``full`` asks for the full bundle only."""
        path = "/v1/bundle" if have is None else f"/v1/bundle?have={int(have)}"
        if have is not None:  # an agent that reads deltas says so; full=1 after any doubt
            path += "&full=1" if full else "&delta=1"
        headers = {} if have is None else {"If-None-Match": f'"{int(have)}"'}
        # Cap the download at the installer's own limit, whatever Content-Length says: a
        # larger file would be refused by install_bundle anyway (endless-data attack).
        limit = self.max_bundle or DEFAULT_MAX_BYTES
        try:
            resp = self._send("GET", path, b"", headers, max_reply=limit, ok=(200, 304, 404))
        except Transient as exc:
            if isinstance(exc.__cause__, ReplyTooLarge):
                raise BundleTooLarge(f"bundle larger than {limit} bytes") from exc
            raise
        version = _int_or_none(resp.header("Passgate-Bundle-Version"))
        if resp.status == 200:
            kind = (resp.header("Content-Type") or "").split(";")[0].strip()
            return BundleReply(resp.body, version, delta=kind == CHAIN_CONTENT_TYPE)
        return BundleReply(None, version, published=resp.status != 404)

    def time(self) -> None:
        """Ask only for a time token (``GET /v1/time``); the token goes to ``time_sink``."""
        self._send("GET", "/v1/time", b"", ok=(204, 200))

    # --- plumbing -------------------------------------------------------------------------

    def _signed(self, fields: dict) -> bytes:
        # Clamped to the protocol's integer range (0..2**63-1): a wild clock must not make
        # a batch the collector refuses as a whole, which would block the queue.
        sent_at = min(max(int(self._now()), 0), (1 << 63) - 1)
        payload = dumps_payload(in_key_order({"v": PROTOCOL, "sent_at": sent_at, **fields}))
        return encode_sign1(payload, self._key.sign, {HDR_ALG: ALG_EDDSA, HDR_KID: self._kid})

    def _send(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: dict | None = None,
        *,
        max_reply: int = 1 << 20,
        ok: tuple[int, ...] = (200, 201),
    ) -> Response:
        # Whom the time token is for, and the clock's fresh challenge: a token that echoes
        # it proves the time is now, not replayed (passgate.clock.tokens).
        hdrs = {"Accept": "application/cbor", DEVICE_HEADER: self.device_id, **(headers or {})}
        nonce = self._time_nonce() if self._time_nonce is not None else None
        if nonce:
            hdrs[NONCE_HEADER] = base64.urlsafe_b64encode(nonce).rstrip(b"=").decode()
        if method == "POST":
            hdrs["Content-Type"] = "application/cbor"
        req = Request(method, self.base_url + path, body, hdrs, self.timeout, max_reply)
        try:
            resp = self._transport.send(req)
        except OSError as exc:
            # The class name only: messages can carry addresses, never row data, but stay short.
            raise Transient(f"{type(exc).__name__}: {exc}"[:200]) from exc
        except ValueError as exc:
            # A collector URL that can never work (no scheme, ftp://, a port that is not a
            # number): retrying cannot help, and it must not crash the agent's loop.
            raise Refused(f"bad collector URL: {exc}"[:200]) from exc
        self._take_time(resp)
        self._take_challenge(resp)
        if resp.status in ok:
            return resp
        code, detail = _error_of(resp)
        what = f"{method} {path.split('?')[0]}: HTTP {resp.status}" + (f" {code}" if code else "")
        if resp.status == 429 or resp.status >= 500:
            retry_after = _int_or_none(resp.header("Retry-After"))
            raise Transient(what, resp.status, code, retry_after)
        if resp.status == 413:
            raise TooLarge(what, resp.status, code)
        if 400 <= resp.status < 500:
            raise Refused(what + (f": {detail}" if detail else ""), resp.status, code)
        # 1xx/3xx we did not ask for: a proxy or captive portal, not our collector.
        raise Transient(what, resp.status, code)

    def _take_challenge(self, resp: Response) -> None:
        text = resp.header(CHALLENGE_HEADER)
        if not text or len(text) > CHALLENGE_MAX * 2:
            return
        try:
            self._challenge = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return  # not ours to judge: the next answer brings another

    def _take_time(self, resp: Response) -> None:
        token = resp.header(TIME_HEADER)
        if not token or self._time_sink is None:
            return
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            log.warning("collector sent an undecodable time token; ignored")
            return
        try:
            self._time_sink(raw)
        except (PassgateError, OSError, ValueError) as exc:
            # Time is a bonus of every answer; a bad token must never cost an upload.
            log.warning("time token not used: %s", exc)

    @staticmethod
    def _cbor_map(resp: Response, what: str) -> dict:
        try:
            obj = loads_reply(resp.body, what)
        except PassFormatError as exc:
            raise Transient(f"{what}: {exc}", resp.status) from None
        if not isinstance(obj, dict) or obj.get("v") != PROTOCOL:
            raise Transient(f"{what}: not a version {PROTOCOL} map", resp.status)
        return obj


def _error_of(resp: Response) -> tuple[str | None, str | None]:
    try:
        obj = cbor2.loads(resp.body) if resp.body else None
    except Exception:  # an error page from a proxy is HTML, not CBOR: no code, that is all
        return None, None
    if isinstance(obj, dict):
        code, detail = obj.get("error"), obj.get("detail")
        return (
            code if isinstance(code, str) else None,
            detail[:200] if isinstance(detail, str) else None,
        )
    return None, None


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip().strip('"')
    # ASCII digits only: "²".isdigit() is true and int() refuses it (a proxy's odd header
    # must not escape the agent's round as a ValueError).
    return int(text) if text.isascii() and text.isdigit() else None
