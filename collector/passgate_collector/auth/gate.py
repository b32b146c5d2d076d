"""The guard in front of every console request: session, timeouts, role, CSRF.

Rules kept here:
- Every request outside ``/v1/`` and ``roles.PUBLIC_ENDPOINTS`` needs a live session: a
  browser asking for a page is sent to ``/login`` (302), anything else gets 401. A role too low
  for ``roles.required_role`` gets 403.
- A session ends after ``idle_s`` without a request, ``absolute_s`` after sign-in, or when the
  account's epoch changes (password, second factor or role changed, account removed, signed
  out). The role is read from the database on every request, never trusted from the cookie.
- Every console request that is not GET, HEAD or OPTIONS carries the session's CSRF token
  (form field ``csrf_token`` or header ``X-CSRF-Token``), sign-in included; the device API is
  exempt (devices sign their requests).
- The reverse-proxy identity header, when configured, is believed only from a trusted proxy
  address, and only for an account that exists (the collector still decides the role).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable

from flask import abort, g, redirect, request, session, url_for
from flask.wrappers import Response

from .. import errorpage
from ..i18n import _
from ..store import SqlStore
from ..store.accounts import StaffUser
from . import AuthOptions, roles

log = logging.getLogger(__name__)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_S = 15  # refresh "last seen" in the cookie at most this often


class Gate:
    def __init__(self, store: SqlStore, now: Callable[[], float], options: AuthOptions) -> None:
        self.store, self.now, self.options = store, now, options

    # --- sessions ------------------------------------------------------------------------
    def start(self, user: StaffUser) -> None:
        """A fresh session for ``user`` (a new cookie and CSRF token: no fixation)."""
        t = int(self.now())
        session.clear()
        session.permanent = True
        session.update(u=user.name, e=user.epoch, t0=t, seen=t, csrf=secrets.token_urlsafe(32))
        g.staff = user

    def end(self) -> None:
        session.clear()
        g.staff = None

    def user(self) -> StaffUser | None:
        """The signed-in account of this request (after :meth:`before_request`)."""
        return g.get("staff")

    def csrf_token(self) -> str:
        token = session.get("csrf")
        if not token:
            token = session["csrf"] = secrets.token_urlsafe(32)
        return token

    def _proxy_user(self) -> str | None:
        header = self.options.proxy_user_header
        if not header or request.remote_addr not in self.options.trusted_proxies:
            return None
        return (request.headers.get(header) or "").strip().lower() or None

    def client_address(self) -> str:
        """The browser's address: the proxy's last X-Forwarded-For hop if the peer is a
        trusted proxy (the one entry the proxy itself wrote), else the peer."""
        peer = request.remote_addr or "-"
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and peer in self.options.trusted_proxies:
            return forwarded.split(",")[-1].strip() or peer
        return peer

    def _load(self) -> StaffUser | None:
        proxied = self._proxy_user()
        if proxied is not None and session.get("u") != proxied:
            user = self.store.user(proxied)
            if user is None:
                log.warning("proxy named an account the collector does not have")
                self.end()
                return None
            self.start(user)
            return user
        name = session.get("u")
        if name is None:
            return None
        user = self.store.user(name)
        t = int(self.now())
        if (user is None or session.get("e") != user.epoch
                or t - int(session.get("t0", 0)) > self.options.absolute_s
                or t - int(session.get("seen", 0)) > self.options.idle_s):
            self.end()
            return None
        if t - int(session["seen"]) >= TOUCH_S:
            session["seen"] = t
        return user

    # --- the guard -----------------------------------------------------------------------
    def check_csrf(self) -> None:
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        expected = session.get("csrf") or ""
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(400, description=errorpage.FORM_EXPIRED)

    def before_request(self) -> Response | None:
        g.staff = None
        if request.path.startswith(roles.DEVICE_API):
            return None
        user = g.staff = self._load()
        unsafe = request.method not in SAFE_METHODS
        if roles.is_public(request.endpoint, request.path):
            if unsafe:
                self.check_csrf()
            return None
        if user is None:
            return self._anonymous()
        need = roles.required_role(request.endpoint, request.path, request.method)
        if not roles.allows(user.role, need):
            abort(403, description=_(errorpage.NEEDS_ROLE) % {"role": need})
        if unsafe:
            self.check_csrf()
        return None

    def _anonymous(self) -> Response:
        best = request.accept_mimetypes.best or ""
        if request.method in ("GET", "HEAD") and best not in (
                "application/json", "text/event-stream", "text/csv"):
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return Response("sign in first\n", status=401, content_type="text/plain",
                        headers={"WWW-Authenticate": 'Cookie realm="passgate staff"'})

    def after_request(self, resp: Response) -> Response:
        if request.path.startswith(roles.DEVICE_API):
            return resp
        resp.headers.setdefault("X-Frame-Options", "DENY")  # no clickjacking of ack buttons
        resp.vary.add("Cookie")
        if g.get("staff") is not None:
            resp.headers.setdefault("Cache-Control", "no-store")  # not in a shared cache
        return resp
