"""``/login``, ``/logout`` and ``/healthz``.

Rules kept here:
- One failure message for every way a sign-in can fail (no such account, wrong password,
  wrong or reused second-factor code, password-less proxy account): nobody learns from the
  answer, or its timing (``passwords.verify_password``), whether an account exists.
- Failed sign-ins are counted in the database per account name and per source address; past
  ``account_limit`` or ``address_limit`` within ``limit_window_s`` the form answers 429 without
  checking the password. A good sign-in clears its account's count.
- Logs name an account only once it exists and never hold a password, a code or a secret.
- ``next`` redirects only to a path on this site.
- ``/healthz`` says whether the database answers, and nothing else.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, redirect, render_template, request

from ..i18n import N_, _
from ..store.accounts import failure_key
from . import passwords, totp
from .gate import Gate

log = logging.getLogger(__name__)
FAILED = N_("Sign-in failed: check the name, the password and the code.")
LIMITED = N_("Too many failed sign-ins. Wait a few minutes and try again.")
_SAFE_NEXT = re.compile(r"/(?![/\\])[^\s]*")


def _next_path(text: str | None) -> str:
    return text if text and _SAFE_NEXT.fullmatch(text) else "/"


def blueprint(gate: Gate) -> Blueprint:
    bp = Blueprint("auth", __name__)
    store, options = gate.store, gate.options

    def form(message: str | None, status: int) -> Response:
        html = render_template("login.html", message=_(message) if message else None,
                               next=_next_path(request.values.get("next")))
        headers = {"WWW-Authenticate": 'Cookie realm="passgate staff"'} if status == 401 else {}
        return Response(html, status=status, headers=headers,
                        content_type="text/html; charset=utf-8")

    @bp.get("/login")
    def login() -> Response:
        gate.csrf_token()  # the form posts it back (login CSRF)
        return form(None, 200)

    @bp.post("/login")
    def login_post():
        name = (request.form.get("name") or "").strip().lower()
        password = request.form.get("password") or ""
        code = request.form.get("code") or ""
        now = int(gate.now())
        keys = [failure_key("account", name), failure_key("address", gate.client_address())]
        since = now - options.limit_window_s
        if (store.login_failures(keys[0], since) >= options.account_limit
                or store.login_failures(keys[1], since) >= options.address_limit):
            log.warning("staff sign-in refused: too many failures (rate limit)")
            return form(LIMITED, 429)
        user = store.user(name) if name else None
        ok = passwords.verify_password(user.pw_hash if user else None, password)
        if ok and user is not None and user.totp_secret:
            step = totp.matching_step(user.totp_secret, code, gate.now())
            ok = step is not None and store.use_totp_step(user.name, step)
        if not ok or user is None:
            store.add_login_failure(keys, now, since)
            if user is not None:
                log.warning("staff sign-in failed for account %s", user.name)
            else:
                log.warning("staff sign-in failed for a name that is not an account")
            return form(FAILED, 401)
        store.clear_login_failures(keys[0])
        if passwords.needs_rehash(user.pw_hash) and len(password) >= passwords.MIN_LENGTH:
            store.set_password(user.name, passwords.hash_password(password), new_epoch=False)
        gate.start(user)
        log.info("staff sign-in: %s (%s)", user.name, user.role)
        return redirect(_next_path(request.form.get("next")))

    @bp.post("/logout")
    def logout():
        user = gate.user()
        if user is not None:
            store.new_epoch(user.name)  # ends this account's sessions in every browser
            log.info("staff sign-out: %s", user.name)
        gate.end()
        return redirect("/login")

    @bp.get("/healthz")
    def healthz() -> Response:
        ok = store.ping()
        return Response("ok\n" if ok else "unavailable\n", status=200 if ok else 503,
                        content_type="text/plain")

    return bp
