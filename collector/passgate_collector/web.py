"""The collector's HTTP application (Flask): the device API under ``/v1/`` and the staff page.

Flask because it is the most widely known Python web framework, synchronous like both
database drivers (no event loop to keep unblocked), with a test client and Jinja2 built in;
waitress serves it (pure Python, production-grade, no compiler, runs anywhere). The app holds
no global state: :func:`create_app` receives the store, the time-token issuer and the clock.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from passgate.passes.keys import kid_of

from . import auth as staff_auth
from . import protocol, staff
from .ingest import apply_batch
from .protocol import CONTENT_TYPE, ProtocolError
from .store import SqlStore, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Collector limits and staff-page choices (command-line options of ``serve``)."""

    max_rows: int = protocol.MAX_ROWS
    max_body: int = protocol.MAX_BODY
    sharing_window_s: int = 120
    recent_per_device: int = 20
    denials_since_s: int = 24 * 3600


def _cbor(obj: object, status: int = 200) -> Response:
    return Response(protocol.encode(obj), status=status, content_type=CONTENT_TYPE)


def _error(status: int, code: str, detail: str) -> Response:
    return Response(protocol.error_body(code, detail), status=status, content_type=CONTENT_TYPE)


def create_app(
    store: SqlStore,
    *,
    time_token: Callable[[float, str, bytes | None], bytes] | None,
    now: Callable[[], float] = time.time,
    settings: Settings | None = None,
    auth: staff_auth.AuthOptions | None = None,
) -> Flask:
    """Build the application. ``time_token(now, device_id, nonce)`` returns signed time-token
    bytes (None: the collector has no time key and sends no ``Passgate-Time`` header, which is
    logged once at start). ``auth``: staff sessions and sign-in limits (``auth.AuthOptions``)."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    staff_auth.init_app(app, store, now=now, options=auth)  # no console route without a session
    if time_token is None:
        log.warning("no time key: responses carry no signed time; devices cannot raise the floor")

    def clock() -> int:
        return int(now())

    def signed_body(expect: str) -> protocol.Signed:
        if request.mimetype != CONTENT_TYPE:
            raise ProtocolError(415, "unsupported_media_type", f"send {CONTENT_TYPE}")
        signed = protocol.decode_signed(request.get_data(cache=False), expect)
        g.device = signed.payload["device"]  # whom the time token is for, if no header says
        return signed

    def token_for() -> tuple[str, bytes | None] | None:
        """(device id, challenge) the time token answers, from the request headers."""
        device = request.headers.get(protocol.DEVICE_HEADER) or g.get("device")
        if not device or not protocol.DEVICE_ID_RE.fullmatch(device):
            return None
        nonce = None
        text = request.headers.get(protocol.NONCE_HEADER)
        if text:
            try:
                nonce = protocol.unb64url(text)
            except ValueError:
                nonce = None
            if nonce is not None and len(nonce) != protocol.TIME_NONCE_LEN:
                nonce = None  # not a challenge we can answer: the token still raises the floor
        return device, nonce

    @app.errorhandler(ProtocolError)
    def protocol_error(exc: ProtocolError) -> Response:
        return _error(exc.status, exc.code, exc.detail)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Under /v1/ every error body is the protocol's CBOR map (docs/sync-protocol.md
        # section 1), also for paths and methods Flask refuses itself; staff pages keep HTML.
        if not request.path.startswith("/v1/") or exc.code is None:
            return exc
        code = "malformed" if exc.code == 400 else re.sub(
            r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")  # not_found...
        resp = _error(exc.code, code, exc.description or exc.name or "")
        allow = getattr(exc, "valid_methods", None)  # a 405 must say what is allowed
        if allow:
            resp.headers["Allow"] = ", ".join(allow)
        return resp

    @app.errorhandler(413)
    def too_large(_exc) -> Response:
        return _error(413, "too_large", f"request body over {settings.max_body} bytes")

    @app.errorhandler(500)
    def server_error(exc) -> Response:
        log.error("internal error: %s", type(getattr(exc, "original_exception", exc)).__name__)
        return _error(500, "internal", "the collector failed; retry later")

    @app.after_request
    def add_time(resp: Response) -> Response:
        target = token_for() if time_token is not None and request.path.startswith("/v1/") else None
        if target is not None:
            try:
                token = time_token(now(), *target)
                resp.headers[protocol.TIME_HEADER] = protocol.b64url(token)
            except Exception:  # a broken signer must not turn answers into errors; say so
                log.exception("cannot issue a time token")
        return resp

    @app.post("/v1/enrol")
    def enrol() -> Response:
        req = protocol.parse_enrol(signed_body("enrol"))
        token_hash = hashlib.sha256(req.token.encode()).digest()
        try:
            outcome = store.enrol(token_hash, req.device, req.pubkey, kid_of(req.pubkey), clock())
        except StoreError as exc:
            code = str(exc)
            status = 409 if code == "already_enrolled" else 403
            return _error(status, code, "ask an administrator for a new enrolment token")
        if outcome == "created":
            log.info("device %s enrolled (key %s)", req.device, kid_of(req.pubkey).hex())
        dev = store.device(req.device)
        body = {"v": protocol.VERSION, "device": req.device, "enrolled_at": dev.enrolled_at}
        return _cbor(body, 201 if outcome == "created" else 200)

    @app.post("/v1/batches")
    def batches() -> Response:
        signed = signed_body("batch")
        device_id = signed.payload["device"]
        dev = store.device(device_id)
        if dev is None:
            raise ProtocolError(401, "unknown_device", "device not enrolled")
        if not signed.verifies_with(dev.pubkey):
            n = store.add_alert(device_id, "bad_signature",
                                f"batch refused: signature does not verify with the enrolled "
                                f"key (header kid {signed.envelope.kid.hex()})", clock())
            if n == 1 or str(n).rstrip("0") == "1":  # 1, 10, 100...: a flood is not a log flood
                log.warning("device %s: batch with a bad signature refused (%d so far)",
                            device_id, n)
            raise ProtocolError(403, "bad_signature", "signature does not verify")
        if dev.disabled:
            raise ProtocolError(403, "device_disabled", "this device is disabled")
        batch = protocol.parse_batch(signed, settings.max_rows)
        results = apply_batch(store, batch, clock())
        latest = store.latest_bundle()
        return _cbor({"v": protocol.VERSION, "results": results,
                      "bundle_version": latest[0] if latest else None})

    @app.get("/v1/bundle")
    def bundle() -> Response:
        have_text = request.args.get("have")
        etag = request.headers.get("If-None-Match", "").strip().strip('"')
        have = None
        for text in (have_text, etag or None):
            if text is None:
                continue
            if not text.isdigit():
                raise protocol.malformed("have must be a non-negative integer")
            have = max(have or 0, int(text))
        latest = store.latest_bundle()
        if latest is None:
            return _error(404, "no_bundle", "no bundle published yet")
        version = latest[0]
        headers = {protocol.BUNDLE_VERSION_HEADER: str(version), "ETag": f'"{version}"'}
        if have is not None and have >= version:
            return Response(status=304, headers=headers)
        data = store.bundle_data(version)
        return Response(data, status=200, headers=headers, content_type="application/octet-stream")

    @app.get("/v1/time")
    def time_only() -> Response:
        return Response(status=204)

    @app.get("/v1/health")
    def health() -> Response:
        ok = store.ping()
        return _cbor({"ok": ok, "db": store.kind}, 200 if ok else 503)

    @app.get("/")
    def staff_page() -> Response:
        window = request.args.get("window", type=int) or settings.sharing_window_s
        window = max(1, min(window, 7 * 24 * 3600))
        html = staff.render(store, now=clock(), settings=settings, window_s=window)
        return Response(html, content_type="text/html; charset=utf-8")

    return app
