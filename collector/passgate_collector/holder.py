"""The holder web app (``holder_app/``), served as static files under ``/holder/``.

The app is the holder's: it creates the holder key in the browser, imports the pass from the
URL fragment and shows the live code (docs/holder-app.md). The collector only hands out its
files, so any static web server can do the same.

Rules kept here:

* Public on purpose: no staff session is asked for (``auth.roles.PUBLIC_ENDPOINTS`` names
  ``holder.page`` and ``holder.file``). The files hold no staff data and no holder data: a
  holder's key and pass live only in the holder's browser.
* Only the app's own files, by a fixed list of extensions, never the catalogs' sources
  (``locale/``); anything else is 404.
* Each file with its content type (a service worker and ES modules must be JavaScript, the
  manifest ``application/manifest+json``), ``X-Content-Type-Options: nosniff`` and a
  Content-Security-Policy that allows only the app's own origin: no inline script, no
  other site, no framing, no form posts.
* ``Cache-Control: no-cache``: the browser revalidates, so a new version reaches the
  service worker's cache (which keeps the app working offline).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, redirect, send_from_directory

APP_DIR = Path(__file__).parent / "holder_app"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")


def _headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _send(name: str) -> Response:
    path = Path(name)
    kind = CONTENT_TYPES.get(path.suffix)
    if kind is None or path.parts[:1] == ("locale",) or ".." in path.parts:
        abort(404)
    resp = send_from_directory(APP_DIR, name, mimetype=kind.split(";")[0], max_age=0)
    resp.headers["Content-Type"] = kind
    return _headers(resp)


def blueprint() -> Blueprint:
    bp = Blueprint("holder", __name__)

    @bp.get("/holder")
    def bare() -> Response:
        return redirect("/holder/", code=301)  # relative file names need the trailing slash

    @bp.get("/holder/")
    def page() -> Response:
        return _send("index.html")

    @bp.get("/holder/<path:name>")
    def file(name: str) -> Response:
        return _send(name)

    return bp
