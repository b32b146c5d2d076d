"""The languages the staff console speaks: English, Russian and Tatar, per staff member.

Rules kept here:

- One gettext domain, ``passgate_collector``, its catalogs in
  ``passgate_collector/locale/<lang>/LC_MESSAGES/passgate_collector.{po,mo}``, managed like the
  checkpoint's (``tools/i18n_catalogs.py``; ``tests/test_collector_i18n.py`` fails when a
  catalog is stale or a text untranslated). English is the source: every msgid is the English
  text, and a text with no translation is shown in English, never blank.
- Plural forms come from the catalog's ``Plural-Forms`` (Russian three, Tatar one), never
  from ``if n == 1`` in code.
- Each request picks its language: ``?lang=`` (the switch on every page, then remembered in
  the ``passgate_lang`` cookie for a year), else that cookie, else the browser's
  ``Accept-Language``, else English. The choice lives in ``flask.g`` only: the Jinja
  environment is shared by every thread, so its i18n extension is given callables that read
  the request's catalog (``install_gettext_callables``) instead of one request's catalog.
- Outside a request (the command line, a test calling a helper) texts are English.
- Times are untouched here: each site's zone, as ``console/words.py`` says.
"""

from __future__ import annotations

import functools
import gettext as _gettext
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from markupsafe import Markup

if TYPE_CHECKING:
    from flask import Flask, Response

DOMAIN = "passgate_collector"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ru", "tt")  # English first: the source and the fallback
NAMES = {"en": "English", "ru": "Русский", "tt": "Татарча"}
COOKIE = "passgate_lang"
COOKIE_AGE_S = 365 * 86400


def N_(text: str) -> str:  # noqa: N802 - gettext's own name for "mark, translate later"
    return text


@functools.cache
def translations(code: str) -> _gettext.NullTranslations:
    """The catalog of ``code`` (English, or a code that is not a console language: none, so
    English). A missing ``.mo`` is a broken install: it raises (``OSError``) rather than
    silently speaking English."""
    if code == "en" or code not in LANGUAGES:
        return _gettext.NullTranslations()
    with (LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as f:
        return _gettext.GNUTranslations(f)


def current() -> str:
    """The request's language code; ``"en"`` outside a request."""
    from flask import g, has_request_context

    return g.get("lang", "en") if has_request_context() else "en"


def _(text: str) -> str:
    if not text:
        return text
    return translations(current()).gettext(text) or text


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n) or (
        singular if n == 1 else plural)


def choose(query: str | None, cookie: str | None, accept) -> str:
    """The language for a request: the switch, the remembered choice, the browser's list
    (a werkzeug ``LanguageAccept``), English."""
    for code in (query, cookie):
        if code and code.strip().lower() in LANGUAGES:
            return code.strip().lower()
    best = accept.best_match(LANGUAGES) if accept is not None else None
    return best or "en"


def switch_links() -> Markup:
    """The language switch: one link per language to this same page with ``?lang=``."""
    from flask import request

    args = request.args.to_dict()
    # The path as this site's own: quoted (a browser reads "/\\x" as "//x"), one leading
    # slash (an error page may be for any path a client asked, "//other.example/" too).
    path = request.script_root + quote("/" + request.path.lstrip("/"))
    parts = []
    for code in LANGUAGES:
        args["lang"] = code
        url = path + "?" + urlencode(args)
        if code == current():
            parts.append(Markup('<strong lang="{}" aria-current="true">{}</strong>').format(
                code, NAMES[code]))
        else:
            parts.append(Markup('<a href="{}" lang="{}" hreflang="{}">{}</a>').format(
                url, code, code, NAMES[code]))
    return Markup('<span class="lang-switch">{}</span>').format(Markup(" ").join(parts))


def install(env) -> None:
    """Add Jinja2's i18n extension to ``env`` with callables that follow the request."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext=_, ngettext=ngettext, newstyle=True)
    env.globals.update(lang_code=current, language_switch=switch_links)


def init_app(app: Flask) -> None:
    """Pick each request's language, remember a switch, and teach the templates gettext."""
    from flask import g, request

    install(app.jinja_env)

    @app.before_request
    def pick_language() -> None:
        g.lang = choose(request.args.get("lang"), request.cookies.get(COOKIE),
                        request.accept_languages)

    @app.after_request
    def remember_language(resp: Response) -> Response:
        asked = (request.args.get("lang") or "").strip().lower()
        if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
            resp.set_cookie(COOKIE, asked, max_age=COOKIE_AGE_S, httponly=True,
                            samesite="Lax", secure=request.is_secure)
        return resp
