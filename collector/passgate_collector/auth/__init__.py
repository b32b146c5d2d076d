"""Staff sign-in for the collector's console: accounts, roles, sessions, CSRF, rate limits.

``init_app(app, store, now=..., options=...)`` is the one call ``web.create_app`` makes: it
sets the session cookie up, adds ``/login``, ``/logout`` and ``/healthz``, and installs the
``before_request`` guard that lets no console request through without a session and the role
``roles.ACCESS`` names. The parts: ``roles`` (the authorisation table), ``gate`` (sessions,
timeouts, CSRF, proxy identity), ``views`` (sign-in with its rate limit), ``passwords``
(argon2id), ``totp`` (RFC 6238). docs/collector.md says how to run it.

Rules kept here:
- The session cookie is signed with a key kept in the database, ``Secure`` (browsers keep
  it over plain HTTP only for 127.0.0.1/localhost), ``HttpOnly`` and ``SameSite=Lax``.
- Nothing is configured by default that would let anyone in: the reverse-proxy identity
  header is off until named, and then believed only from ``trusted_proxies``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports this package for AuthOptions, without Flask
    from flask import Flask

    from ..store import SqlStore


@dataclass(frozen=True)
class AuthOptions:
    """Session and sign-in limits (``serve`` options, docs/collector.md)."""

    idle_s: int = 30 * 60  # a session unused this long ends
    absolute_s: int = 12 * 3600  # a session ends this long after sign-in, used or not
    proxy_user_header: str | None = None  # e.g. "X-Remote-User"; None: off
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    account_limit: int = 5  # failed sign-ins per account name per window
    address_limit: int = 20  # failed sign-ins per source address per window
    limit_window_s: int = 15 * 60


def init_app(app: Flask, store: SqlStore, *, now: Callable[[], float] = time.time,
             options: AuthOptions | None = None) -> None:
    from .gate import Gate
    from .views import blueprint

    options = options or AuthOptions()
    app.secret_key = store.session_secret()
    app.config.update(
        SESSION_COOKIE_NAME="passgate_staff",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=options.absolute_s),
    )
    gate = Gate(store, now, options)
    app.extensions["passgate_auth"] = gate
    app.before_request(gate.before_request)
    app.after_request(gate.after_request)
    app.jinja_env.globals.update(csrf_token=gate.csrf_token, staff_user=gate.user)
    app.register_blueprint(blueprint(gate))


def names_account(app: Flask) -> Callable[[str | None], bool]:
    """A check of a raw ``Cookie`` header, for the HTTP server before it reads a body: True
    when it carries this app's session cookie, validly signed and not older than a session
    may live, naming an account. No database read: whether the account still holds (epoch,
    timeouts, role) is the guard's to decide, after. ``web.LARGE_BODIES`` are taken only
    from such requests (``server.make_server``), so a client that never signed in cannot
    make the collector read 12 MiB; no real request loses by it, as every POST of the
    console needs the session's CSRF token anyway."""
    from itsdangerous import BadData
    from werkzeug.sansio.http import parse_cookie  # Flask's own: it decodes no bytes

    signer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    name = app.config["SESSION_COOKIE_NAME"]
    max_age = int(app.permanent_session_lifetime.total_seconds())

    def check(header: str | None) -> bool:
        value = parse_cookie(header or "").get(name)
        if not value or signer is None:
            return False
        try:
            data = signer.loads(value, max_age=max_age)
        except BadData:  # forged, altered or expired: not a session of this collector
            return False
        return isinstance(data, dict) and isinstance(data.get("u"), str)

    return check


def signed_in() -> dict | None:
    """``{"name", "role", "csrf"}`` of the signed-in staff member, for templates rendered
    outside Flask's own environment (the staff page); None outside a request or signed out."""
    from flask import current_app, has_request_context

    if not has_request_context():
        return None
    gate = current_app.extensions.get("passgate_auth")
    user = gate.user() if gate is not None else None
    if user is None:
        return None
    return {"name": user.name, "role": user.role, "csrf": gate.csrf_token()}
