#!/usr/bin/env python3
"""Refresh the passgate gettext catalogs with Babel: template, ``.po`` merge, ``.mo`` compile.

Three domains: ``passgate`` (the checkpoint, ``firmware/passgate/locale/``, Python sources),
``passgate_collector`` (the staff console, ``collector/passgate_collector/locale/``, Python
sources and the Jinja2 templates through Jinja's own Babel extractor) and ``passgate_holder``
(the holder web app, ``collector/passgate_collector/holder_app/locale/``, its JavaScript
through Babel's JavaScript extractor). The holder app is static files with no build step, so
its ``.po`` files compile to one JavaScript module, ``holder_app/messages.js`` (every
translation, and the default purpose table's names from ``firmware/passgate/data/
purposes.toml``), instead of ``.mo`` files; a browser reads it as it is. The ``.po`` files under
``<locale>/<lang>/LC_MESSAGES/`` are the translations' source, edited by hand; this script
only does what ``pybabel`` does, in one step and with the project's settings (``babel.cfg``,
no line numbers, sorted, the plural forms of each language kept)::

    .venv/bin/python tools/i18n_catalogs.py          # extract, update every .po, compile .mo
    .venv/bin/python tools/i18n_catalogs.py --check  # exit 1 if anything is out of date

Tatar's ``Plural-Forms`` is ``nplurals=1; plural=0;``: CLDR gives Tatar the plural category
"other" only (Babel's ``Locale("tt").plural_form`` has no ``one`` rule), since a noun after a
numeral stays singular ("1 минут", "5 минут"); Babel's own table has no entry for ``tt`` and
would fall back to the two English forms, so the header is set here.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "firmware" / "passgate"
LOCALE = SOURCE / "locale"
DOMAIN = "passgate"
COLLECTOR = ROOT / "collector" / "passgate_collector"
HOLDER_APP = COLLECTOR / "holder_app"
HOLDER = "passgate_holder"
# domain: (sources, catalogs, Babel's method map)
DOMAINS = {
    DOMAIN: (SOURCE, LOCALE, [("**.py", "python")]),
    "passgate_collector": (COLLECTOR, COLLECTOR / "locale",
                           [("**.py", "python"),
                            ("**/templates/**.html", "jinja2.ext:babel_extract")]),
    # vendor/ holds third-party modules (.mjs): nothing of ours to translate there.
    HOLDER: (HOLDER_APP, HOLDER_APP / "locale", [("vendor/**", "ignore"), ("*.js", "javascript")]),
}
PLURALS = {
    "ru": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);",
    "tt": "nplurals=1; plural=0;",
}
STAMP = datetime(2026, 12, 1, tzinfo=UTC)  # fixed dates: a re-run changes no file
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None}


def template(domain: str = DOMAIN) -> Catalog:
    """The template: every marked text of ``domain``'s sources (babel.cfg's map)."""
    source, _locale, method_map = DOMAINS[domain]
    cat = Catalog(project="passgate", version="0.1", domain=domain, fuzzy=False,
                  copyright_holder="the passgate authors", msgid_bugs_address="",
                  creation_date=STAMP, revision_date=STAMP)
    for _file, _line, msg, _comments, ctx in extract_from_dir(
        str(source), method_map, keywords=KEYWORDS
    ):
        cat.add(msg, context=ctx)
    return cat


def po_bytes(cat: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, cat, omit_header=False, no_location=True, sort_output=True, width=96)
    return out.getvalue()


def mo_bytes(cat: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, cat)
    return out.getvalue()


def read(path: Path, lang: str, domain: str = DOMAIN) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=lang, domain=domain)


def updated(lang: str, pot: Catalog, domain: str = DOMAIN) -> Catalog:
    """The language's catalog with the template's texts: new ones empty, gone ones dropped."""
    path = DOMAINS[domain][1] / lang / "LC_MESSAGES" / f"{domain}.po"
    cat = read(path, lang, domain) if path.exists() else Catalog(locale=lang, domain=domain)
    cat.update(pot, no_fuzzy_matching=True, update_header_comment=False)
    cat.obsolete.clear()
    cat.project, cat.version = "passgate", "0.1"
    cat.fuzzy = False
    cat.creation_date = cat.revision_date = STAMP
    cat.copyright_holder, cat.msgid_bugs_address = "the passgate authors", ""
    cat.last_translator = cat.language_team = "the passgate authors"
    cat._num_plurals, cat._plural_expr = (  # noqa: SLF001 - Babel has no setter for these
        int(PLURALS[lang].split(";")[0].split("=")[1]),
        PLURALS[lang].split("plural=")[1].rstrip(";"),
    )
    return cat


def files() -> dict[Path, bytes]:
    """Every catalog file of every domain as it should be on disk."""
    out = {}
    for domain, (_source, locale, _map) in DOMAINS.items():
        out.update(domain_files(domain, locale))
    return out


def domain_files(domain: str, locale: Path) -> dict[Path, bytes]:
    pot = template(domain)
    out = {locale / f"{domain}.pot": po_bytes(pot)}
    for lang in PLURALS:
        cat = updated(lang, pot, domain)
        po = locale / lang / "LC_MESSAGES" / f"{domain}.po"
        out[po] = po_bytes(cat)
        if domain == HOLDER:
            continue
        # compile from the .po as written, exactly as pybabel compile would
        out[po.with_suffix(".mo")] = mo_bytes(read_po(io.BytesIO(out[po]), locale=lang))
    if domain == HOLDER:
        out[HOLDER_APP / "messages.js"] = holder_messages(
            {lang: read_po(io.BytesIO(out[locale / lang / "LC_MESSAGES" / f"{domain}.po"]),
                           locale=lang) for lang in PLURALS})
    return out


def holder_messages(cats: dict[str, Catalog]) -> bytes:
    """``messages.js`` of the holder app: ``{lang: {msgid: text or [plural forms]}}`` from
    the ``.po`` files, and the default purpose names by code. Plural ids are keyed by their
    singular; the app picks the form with the language's CLDR rule (``PLURALS`` above)."""
    messages: dict[str, dict[str, object]] = {}
    for lang, cat in cats.items():
        table: dict[str, object] = {}
        for m in cat:
            if not m.id or not m.string:
                continue
            if isinstance(m.id, tuple | list):
                forms = list(m.string)
                if all(forms):
                    table[m.id[0]] = forms
            elif m.string:
                table[m.id] = m.string
        messages[lang] = dict(sorted(table.items()))
    with (SOURCE / "data" / "purposes.toml").open("rb") as f:
        purposes = tomllib.load(f)["purposes"]
    names = {str(p["code"]): {"en": p["label"], **p.get("names", {})}
             for p in sorted(purposes.values(), key=lambda p: p["code"])}
    body = json.dumps({"messages": messages, "purposes": names}, ensure_ascii=False, indent=1,
                      sort_keys=False)
    return ("// Made by tools/i18n_catalogs.py from holder_app/locale/*/LC_MESSAGES/"
            "passgate_holder.po\n// and firmware/passgate/data/purposes.toml: do not edit; "
            "edit those and run the tool.\n"
            f"export default {body};\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list files out of date")
    args = parser.parse_args(argv)
    stale = 0
    for path, data in files().items():
        if path.exists() and path.read_bytes() == data:
            continue
        stale += 1
        print(("out of date: " if args.check else "wrote: ") + str(path.relative_to(ROOT)))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
