"""The collector's HTTP application (Flask): the device API under ``/v1/`` and the staff page.

Flask because it is the most widely known Python web framework, synchronous like both
database drivers (no event loop to keep unblocked), with a test client and Jinja2 built in;
waitress serves it (pure Python, production-grade, no compiler, runs anywhere). The app holds
no global state: :func:`create_app` receives the store, the time-token issuer and the clock.

Rules kept here (docs/sync-protocol.md; tests/test_collector_limits.py, _liveness.py,
_enumeration.py):

- No input makes a 5xx: whatever a caller sends is a 2xx/3xx or a 4xx with a CBOR error.
  Only the collector's own trouble (database down, saturation) answers 5xx.
- Callers without a device key get the same answer for enrolled and unknown device ids: a
  batch from an unknown id and one with a bad signature are both ``401 unauthenticated``.
- Time tokens for requests no device signed, and enrolment, are rate-limited per source.
- At most ``max_inflight`` ingests run at once; the next gets ``503`` with ``Retry-After``
  at once instead of waiting for a database connection past the agent's timeout.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, g, request, session
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    RequestEntityTooLarge,
)

from passgate.bundle.delta import CHAIN_CONTENT_TYPE
from passgate.passes.keys import kid_of

from . import auth as staff_auth
from . import errorpage, holder, i18n, liveness, protocol, releases, staff
from .bundles import DeltaCache
from .console import ConsoleOptions, blueprint, passsearch
from .ingest import apply
from .protocol import CONTENT_TYPE, ProtocolError
from .ratelimit import RateLimiter, source_of
from .server import REFUSED
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
    fresh_window_s: int = 600  # how old a liveness challenge or a batch's sent_at may be
    rate_per_s: float = 2.0  # unsigned requests (time tokens, enrolment) per source
    rate_burst: int = 30
    trusted_proxy_header: str | None = None  # e.g. X-Forwarded-For, set by our own proxy
    max_inflight: int = 4  # concurrent ingests (~ database connections) per process
    retry_after_s: int = 5  # what a 503 asks the device to wait at least
    releases_dir: str | None = None  # signed releases served to devices (releases.py)


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# POST paths that take more than ``max_body``: the console's pass search takes a phone photo
# of a QR code (its own limit, and the form around it). Only from a request with a signed
# staff session (``auth.names_account``; ``server.make_server`` lets them through waitress
# likewise); everywhere else, and for anyone not signed in, ``max_body`` holds.
LARGE_BODIES = {"/console/pass": passsearch.MAX_PHOTO_BYTES + 64 * 1024}


def _cbor(obj: object, status: int = 200) -> Response:
    return Response(protocol.encode(obj), status=status, content_type=CONTENT_TYPE)


def _error(status: int, code: str, detail: str) -> Response:
    return Response(protocol.error_body(code, detail), status=status, content_type=CONTENT_TYPE)


def _unauthenticated() -> ProtocolError:
    # One answer whether the id is enrolled or not: 401/403 told outsiders which ids exist.
    return ProtocolError(401, "unauthenticated",
                         "unknown device, or the signature does not verify with its key")


def _busy() -> ProtocolError:
    return ProtocolError(503, "busy", "the collector is saturated; retry after Retry-After")


# PostgreSQL errors that say "not now" rather than "never": class 53, insufficient resources
# (53200 out of shared memory: the advisory locks of many large batches at once can fill the
# server's lock table, docs/collector.md), a serialization failure, a deadlock. The batch's
# transaction was rolled back whole; the device is told busy, to wait and send it again.
_TRANSIENT_SQLSTATES = ("53", "40001", "40P01")


def _transient_db(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(_TRANSIENT_SQLSTATES)
    # No SQLSTATE from psycopg: the database could not be reached or refused the session
    # (every connection it allows in use, a restart, a network cut): not now, rather than
    # never. SQLite's OperationalError also means SQL errors: not one of these.
    return any(c.__name__ == "OperationalError" and c.__module__.split(".")[0] == "psycopg"
               for c in type(exc).__mro__)


def create_app(
    store: SqlStore,
    *,
    time_token: Callable[[float, str, bytes | None], bytes] | None,
    now: Callable[[], float] = time.time,
    settings: Settings | None = None,
    read_store: SqlStore | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    console: ConsoleOptions | None = None,
    auth: staff_auth.AuthOptions | None = None,
) -> Flask:
    """Build the application. ``time_token(now, device_id, nonce)`` returns signed time-token
    bytes (None: the collector has no time key and sends no ``Passgate-Time`` header, which is
    logged once at start). ``read_store``: where the staff page and the console's views read
    (a replica), else ``store``. ``auth``: staff sessions and sign-in limits
    (``auth.AuthOptions``)."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body

    @app.before_request
    def refuse_unusable() -> None:
        """Two refusals before any other hook or view, the same for every path.

        A body over ``max_body`` is 413 even where the view never reads it (a GET): Flask's
        own limit fires only on reading, and waitress's (``server.py``) sits 1 KiB above it.
        The length is the declared one, or with a chunked body the one waitress counted as it
        buffered it. A NUL in the path, the query, a header or a form is 400: PostgreSQL text
        cannot hold one, so any lookup with it failed there (500) and found nothing on
        SQLite; now both backends answer alike, before any query is made."""
        refused = request.environ.get(REFUSED)  # waitress refused it (server.py)
        limit = settings.max_body
        if request.method == "POST" and request.path in LARGE_BODIES and isinstance(
                session.get("u"), str):
            # Before anything reads the form (this hook's NUL check, the CSRF check); only
            # with a signed session naming an account, as waitress (auth.names_account).
            limit = request.max_content_length = LARGE_BODIES[request.path]
        length = request.content_length
        if refused == 413 or (length is not None and length > limit):
            raise RequestEntityTooLarge()
        if refused is not None:
            raise BadRequest(errorpage.UNREADABLE)
        texts = [request.path, *request.headers.values()]
        texts += [t for kv in request.args.items(multi=True) for t in kv]
        if request.mimetype in _FORM_TYPES:
            texts += [t for kv in request.form.items(multi=True) for t in kv]
        if any("\x00" in t for t in texts):
            raise BadRequest(errorpage.NUL_IN_REQUEST)

    i18n.init_app(app)  # first: the sign-in page speaks the staff member's language too
    staff_auth.init_app(app, store, now=now, options=auth)  # no console route without a session
    deltas = DeltaCache()
    if time_token is None:
        log.warning("no time key: responses carry no signed time; devices cannot raise the floor")
    challenges = liveness.Challenges(liveness.load_key(store))
    limiter = RateLimiter(settings.rate_per_s, settings.rate_burst, monotonic)
    inflight = threading.BoundedSemaphore(settings.max_inflight)

    def clock() -> int:
        return int(now())

    def rate_wait() -> float:
        """Take one token from this request's source bucket (once per request)."""
        if "rate_wait" not in g:
            src = source_of(request.remote_addr, request.headers, settings.trusted_proxy_header)
            g.rate_wait = limiter.take(src)
        return g.rate_wait

    def limited() -> None:
        wait = rate_wait()
        if wait > 0:
            raise ProtocolError(429, "rate_limited", "too many requests from this address")

    def signed_body(expect: str) -> protocol.Signed:
        if request.mimetype != CONTENT_TYPE:
            raise ProtocolError(415, "unsupported_media_type", f"send {CONTENT_TYPE}")
        signed = protocol.decode_signed(request.get_data(cache=False), expect)
        g.device = signed.payload["device"]  # whom the time token is for, if no header says
        return signed

    def token_for() -> tuple[str, bytes | None] | None:
        """(device id, challenge) the time token answers, from the request headers; for a
        request an enrolled device signed (``g.verified``), always the id it signed: a
        header naming another id must not get that id a token past the rate limit."""
        device = (g.get("device") if g.get("verified") else
                  request.headers.get(protocol.DEVICE_HEADER) or g.get("device"))
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

    app.register_blueprint(blueprint(store, clock, console, read_store))
    app.register_blueprint(holder.blueprint())  # the holder web app: public static files

    @app.errorhandler(ProtocolError)
    def protocol_error(exc: ProtocolError) -> Response:
        resp = _error(exc.status, exc.code, exc.detail)
        if exc.status == 429:
            resp.headers["Retry-After"] = str(max(1, int(g.get("rate_wait", 1) + 0.999)))
        elif exc.status == 503:
            # Spread the retries: a whole district told "5" would come back in one wave.
            wait = settings.retry_after_s
            resp.headers["Retry-After"] = str(wait + random.randint(0, wait))
        return resp

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Under /v1/ every error body is the protocol's CBOR map (docs/sync-protocol.md
        # section 1), also for paths and methods Flask refuses itself; staff pages get HTML
        # in the staff member's language (errorpage.py). Redirects stay redirects.
        if exc.code is None or exc.code < 400:
            return exc
        if not request.path.startswith("/v1/"):
            return errorpage.page(exc)
        code = "malformed" if exc.code == 400 else re.sub(
            r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")  # not_found...
        resp = _error(exc.code, code, exc.description or exc.name or "")
        allow = getattr(exc, "valid_methods", None)  # a 405 must say what is allowed
        if allow:
            resp.headers["Allow"] = ", ".join(allow)
        return resp

    @app.errorhandler(413)
    def too_large(exc) -> Response:
        if not request.path.startswith("/v1/"):
            return errorpage.page(exc if isinstance(exc, HTTPException)
                                  else RequestEntityTooLarge())
        return _error(413, "too_large", f"request body over {settings.max_body} bytes")

    @app.errorhandler(500)
    def server_error(exc) -> Response:
        cause = getattr(exc, "original_exception", exc)
        if request.path.startswith("/v1/") and cause is not None and _transient_db(cause):
            # The database is out of connections or unreachable (its first query, before
            # any batch began): the device waits and comes back, as for a saturated one.
            log.warning("database unavailable (%s %s); answered 503",
                        getattr(cause, "sqlstate", None), type(cause).__name__)
            return protocol_error(_busy())
        log.error("internal error: %s", type(cause).__name__)
        if not request.path.startswith("/v1/"):
            return errorpage.page(InternalServerError())
        return _error(500, "internal", "the collector failed; retry later")

    @app.after_request
    def add_time(resp: Response) -> Response:
        if not request.path.startswith("/v1/"):
            return resp
        resp.headers[protocol.CHALLENGE_HEADER] = protocol.b64url(challenges.issue(now()))
        target = token_for() if time_token is not None else None
        if target is not None and not g.get("verified") and (
                resp.status_code == 429 or rate_wait() > 0):
            target = None  # signing for anyone, as fast as they ask, is the limiter's to stop
        if target is not None:
            try:
                token = time_token(now(), *target)
                resp.headers[protocol.TIME_HEADER] = protocol.b64url(token)
            except Exception:  # a broken signer must not turn answers into errors; say so
                log.exception("cannot issue a time token")
        return resp

    @app.post("/v1/enrol")
    def enrol() -> Response:
        limited()
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
            raise _unauthenticated()
        if not signed.verifies_with(dev.pubkey):
            n = store.add_alert(device_id, "bad_signature",
                                f"batch refused: signature does not verify with the enrolled "
                                f"key (header kid {signed.envelope.kid.hex()})", clock())
            if n == 1 or str(n).rstrip("0") == "1":  # 1, 10, 100...: a flood is not a log flood
                log.warning("device %s: batch with a bad signature refused (%d so far)",
                            device_id, n)
            raise _unauthenticated()
        if dev.disabled:  # its time tokens are rate-limited like anyone's
            raise ProtocolError(403, "device_disabled", "this device is disabled")
        g.verified = True
        batch = protocol.parse_batch(signed, settings.max_rows)
        if not inflight.acquire(blocking=False):
            raise _busy()
        try:
            done = apply(store, batch, clock(),
                         challenge_ms=challenges.genuine_ms(batch.challenge),
                         window_s=settings.fresh_window_s)
        except Exception as exc:
            if not _transient_db(exc):
                raise
            log.warning("device %s: batch rolled back, database busy (%s %s); answered 503",
                        device_id, exc.sqlstate, type(exc).__name__)  # type: ignore[attr-defined]
            raise _busy() from exc
        finally:
            inflight.release()
        # The bundle version was read in the batch's own transaction (store.base.HELD_SQL).
        return Response(protocol.batch_reply(done.results, done.bundle_version),
                        content_type=CONTENT_TYPE)

    @app.get("/v1/bundle")
    def bundle() -> Response:
        have_text = request.args.get("have")
        etag = request.headers.get("If-None-Match", "").strip().strip('"')
        have = None
        for text in (have_text, etag or None):
            if text is None:
                continue
            # isdigit() alone accepts "²" and other digits int() refuses: ASCII only, bounded.
            if not (text.isascii() and text.isdigit() and len(text) <= 19
                    and int(text) <= protocol.MAX_INT):
                raise protocol.malformed("have must be a non-negative integer")
            have = max(have or 0, int(text))
        latest = store.latest_bundle()
        if latest is None:
            return _error(404, "no_bundle", "no bundle published yet")
        version = latest[0]
        headers = {protocol.BUNDLE_VERSION_HEADER: str(version), "ETag": f'"{version}"'}
        if have is not None and have >= version:
            return Response(status=304, headers=headers)
        # Deltas only for agents that ask (delta=1): a device of an older firmware sends have=N
        # and must keep getting the full bundle it can read (docs/sync-protocol.md).
        wants_delta = request.args.get("delta") == "1" and "full" not in request.args
        if have is not None and wants_delta:
            chain = deltas.chain(have, version, list(store.bundle_published_at()),
                                 store.bundle_data)
            if chain is not None:
                return Response(chain, status=200, headers=headers,
                                content_type=CHAIN_CONTENT_TYPE)
        data = store.bundle_data(version)
        return Response(data, status=200, headers=headers, content_type="application/octet-stream")

    if settings.releases_dir is not None:
        releases.register_routes(app, releases.ReleaseDir(settings.releases_dir), store, clock)

    @app.get("/v1/time")
    def time_only() -> Response:
        limited()
        return Response(status=204)

    @app.get("/v1/health")
    def health() -> Response:
        ok = store.ping()
        return _cbor({"ok": ok, "db": store.kind}, 200 if ok else 503)

    @app.get("/")
    def staff_page() -> Response:
        window = request.args.get("window", type=int) or settings.sharing_window_s
        window = max(1, min(window, 7 * 24 * 3600))
        html = staff.render(read_store or store, now=clock(), settings=settings, window_s=window,
                            root=request.script_root)
        return Response(html, content_type="text/html; charset=utf-8")

    return app
