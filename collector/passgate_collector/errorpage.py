"""The staff side's error pages, in the staff member's language.

Rules kept here:

- Under ``/v1/`` an error is the protocol's CBOR map (``web.py``); everywhere else (sign-in,
  the console, the staff page) it is this small HTML page, never werkzeug's English one: a
  title for the status, one sentence saying what to do, and a link back to the console.
- The sentence is the reason the collector gave when it gave one (each marked for
  translation where it is raised: ``FORM_EXPIRED``, ``NUL_IN_REQUEST``...), else the
  status's own. werkzeug's stock descriptions are never shown: they are English only.
- The status and the headers the error carries (``Allow`` on a 405, ``Retry-After``) stay.
- The link back goes to the console, except under ``/holder/`` (the pass holders' public
  app, whose visitors have no console): there it goes to the holder app.
- The language is the request's (``i18n.init_app``); a refusal made before that hook ran
  (``web.refuse_unusable``: a NUL, a body over the limit) picks it the same way here.
"""

from __future__ import annotations

from flask import current_app, g, request
from flask.wrappers import Response
from werkzeug.exceptions import HTTPException

from . import i18n
from .i18n import N_, _

# Reasons the collector gives, raised with these texts (and sent as they are, in English,
# as the CBOR ``detail`` under /v1/).
FORM_EXPIRED = N_("The form has expired or did not come from this console: reload the page "
                  "and try again.")
NEEDS_ROLE = N_("This needs the %(role)s role.")
NUL_IN_REQUEST = N_("a NUL character in the request")
UNREADABLE = N_("the request could not be read (its length or its chunks)")

TITLES = {
    400: N_("The request could not be used"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed here"),
    413: N_("Too large"),
    429: N_("Too many requests"),
    500: N_("Something went wrong"),
}
TEXTS = {
    400: N_("The page sent something the collector cannot use. Go back, reload the page and "
            "try again."),
    403: N_("Your account's role does not allow this. Ask an administrator."),
    404: N_("There is no such page or checkpoint. Check the address, or go back to the "
            "console."),
    405: N_("This page does not take that kind of request."),
    413: N_("What was sent is larger than the collector takes (a photo of a pass: up to 12 "
            "MiB, signed in)."),
    429: N_("Too many attempts from this address. Wait a few minutes and try again."),
    500: N_("The collector failed to answer. Try again in a minute; if it keeps failing, tell "
            "the administrator."),
}
GENERIC = N_("The collector could not answer this request.")
ERROR = N_("Error")  # the title of a status not in TITLES


def _ensure_language() -> None:
    if "lang" not in g:  # refused before i18n's own hook ran
        g.lang = i18n.choose(request.args.get("lang"), request.cookies.get(i18n.COOKIE),
                             request.accept_languages)


def text_of(exc: HTTPException) -> str:
    """The sentence shown for ``exc``, translated: its own reason if the collector gave one,
    else its status's."""
    own = vars(exc).get("description")  # set only when the raise gave one (werkzeug's own
    if isinstance(own, str) and own:     # are class attributes, some of them properties)
        return _(own)
    return _(TEXTS.get(exc.code or 500, GENERIC))


def page(exc: HTTPException) -> Response:
    """``exc`` as the staff side's HTML page, with its status and headers."""
    _ensure_language()
    code = exc.code or 500
    # Rendered without the context processors: a view's own (the console's reads what its
    # hooks set) cannot hold when the request was refused before them.
    body = current_app.jinja_env.get_template("error.html").render(
        code=code, title=_(TITLES.get(code, ERROR)), text=text_of(exc),
        back=request.script_root + ("/holder/" if request.path.startswith("/holder/")
                                    else "/console/"),
        holder=request.path.startswith("/holder/"))
    resp = Response(body, status=code, content_type="text/html; charset=utf-8")
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            resp.headers[name] = value
    return resp
