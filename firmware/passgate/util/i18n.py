"""The languages the checkpoint speaks: stdlib ``gettext`` over catalogs that Babel manages.

Rules kept:

- One gettext domain per package: ``passgate`` here, its catalogs in
  ``firmware/passgate/locale/<lang>/LC_MESSAGES/passgate.{po,mo}`` (the collector keeps its
  own ``passgate_collector`` domain beside its code). The ``.po`` files are the source; the
  ``.mo`` files are compiled with Babel and committed, so a device needs neither Babel nor a
  build step, and ``tests/test_i18n.py`` fails when a ``.mo`` no longer matches its ``.po``
  or a marked English text is missing from the template.
- English is the source language: every msgid is the English text itself. A text with no
  translation (no catalog, no entry, an empty entry) is shown in English, never blank.
- Plural forms come from each catalog's ``Plural-Forms`` header (Russian: three forms;
  Tatar: one, see ``docs/ru/technician.md``), never from ``if n == 1`` in code.
- Loading is lazy and cached per language; nothing here reads the config or any global
  "current language": whoever shows text is handed a :class:`Language`.

Marking texts for extraction (``pybabel extract -F babel.cfg``): ``lang.gettext("...")``,
``lang.ngettext("...", "...", n)``, ``lang.pgettext("context", "...")``, and :func:`N_` for
an English text that is translated later (a fault title handed to the display policy).
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

from passgate.errors import ConfigError

DOMAIN = "passgate"
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
LANGUAGES = ("en", "ru", "tt")  # English first: the source and the fallback
NAMES = {"en": "English", "ru": "русский", "tt": "татарча"}


def N_(text: str) -> str:  # noqa: N802 - gettext's own name for "mark, do not translate yet"
    """Mark ``text`` for the catalog without translating it here (it is translated later)."""
    return text


class Language:
    """One language's texts: ``gettext``, ``ngettext`` and ``pgettext`` over its catalog.

    ``code`` is ``"en"``, ``"ru"`` or ``"tt"``. Texts missing from the catalog come back as
    the English msgid (gettext's own fallback), and an empty translation is never returned.
    """

    def __init__(self, code: str, translations: gettext.NullTranslations) -> None:
        self.code = code
        self._t = translations

    def gettext(self, message: str) -> str:
        if not message:  # gettext("") is the catalog's header, never a text to show
            return message
        return self._t.gettext(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n) or (singular if n == 1 else plural)

    def pgettext(self, context: str, message: str) -> str:
        return self._t.pgettext(context, message) or message

    def __repr__(self) -> str:
        return f"Language({self.code!r})"


def valid_language(value: object) -> str:
    """A config validator: one of :data:`LANGUAGES` (``"ru"``, ``"tt"``, ``"en"``)."""
    if not isinstance(value, str) or value.strip().lower() not in LANGUAGES:
        raise ConfigError(f"{value!r} is not a language here: one of {', '.join(LANGUAGES)}")
    return value.strip().lower()


@functools.cache
def language(code: str = "en") -> Language:
    """The :class:`Language` for ``code`` (loaded once; a cache, not state: catalogs are
    read-only). English has no catalog: its texts are the msgids."""
    code = valid_language(code)
    if code == "en":
        return Language("en", gettext.NullTranslations())
    path = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.mo"
    try:
        with path.open("rb") as f:
            return Language(code, gettext.GNUTranslations(f))
    except OSError as exc:  # a broken install: say which file, do not silently speak English
        raise ConfigError(f"language {code!r}: cannot read {path}: {exc.strerror}") from None


ENGLISH = language("en")


# Languages that write a decimal comma (CLDR: ru and tt "decimal" is ","); English a point.
DECIMAL_COMMA = frozenset({"ru", "tt"})


def decimal(value: float, spec: str, lang: Language = ENGLISH) -> str:
    """``value`` formatted with ``spec`` (``".1f"``, ``"g"``) as ``lang`` writes numbers:
    ``15.5`` in English, ``15,5`` in Russian and Tatar. No thousands separator."""
    text = format(value, spec)
    return text.replace(".", ",") if lang.code in DECIMAL_COMMA else text


def span(seconds: float, lang: Language = ENGLISH) -> str:
    """A short span for a small screen, no plural needed: ``45s``, ``14 min``, ``2h 13m``,
    ``3d 4h`` (Russian ``2 ч 13 мин``, Tatar ``2 сәг 13 мин``)."""
    s = int(seconds)
    if s < 60:
        return lang.gettext("{s}s").format(s=s)
    if s < 3600:
        return lang.gettext("{m} min").format(m=s // 60)
    if s < 86400:
        return lang.gettext("{h}h {m:02d}m").format(h=s // 3600, m=s % 3600 // 60)
    return lang.gettext("{d}d {h}h").format(d=s // 86400, h=s % 86400 // 3600)


def duration(seconds: float, lang: Language = ENGLISH) -> str:
    """A span in words with the language's plural forms, largest two units: ``1 minute``,
    ``2 hours 13 minutes``, ``3 days`` (Russian ``1 минута``, ``2 минуты``, ``5 минут``)."""
    s = max(0, int(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    parts: list[str] = []
    if d:
        parts.append(lang.ngettext("{n} day", "{n} days", d).format(n=d))
    if h and len(parts) < 2:
        parts.append(lang.ngettext("{n} hour", "{n} hours", h).format(n=h))
    if m and len(parts) < 2 and not d:
        parts.append(lang.ngettext("{n} minute", "{n} minutes", m).format(n=m))
    if not parts:
        parts.append(lang.ngettext("{n} second", "{n} seconds", s).format(n=s))
    return " ".join(parts)
