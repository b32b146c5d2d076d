// The holder app's languages: English, Russian, Tatar. Texts are marked _("...") and
// ngettext("...", "...", n) so Babel extracts them into the passgate_holder catalogs; the
// translations come from messages.js, which tools/i18n_catalogs.py compiles from the .po
// files. Placeholders are {name}, filled by fmt(). The language is the one remembered from
// the switch, else the browser's first of en/ru/tt, else English.

import data from "./messages.js";

export const LANGUAGES = { en: "English", ru: "Русский", tt: "Татарча" }; // endonyms: not translated
const STORE = "passgate-holder-lang";

// CLDR plural rules, the same as the catalogs' Plural-Forms (tools/i18n_catalogs.py).
export const PLURAL = {
  en: (n) => (n === 1 ? 0 : 1),
  ru: (n) => (n % 10 === 1 && n % 100 !== 11 ? 0
    : n % 10 >= 2 && n % 10 <= 4 && (n % 100 < 10 || n % 100 >= 20) ? 1 : 2),
  tt: () => 0,
};

let current = "en";

export function language() {
  return current;
}

export function pick(saved, browserLanguages) {
  if (saved && LANGUAGES[saved]) return saved;
  for (const tag of browserLanguages || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES[base]) return base;
  }
  return "en";
}

export function start() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORE);
  } catch (e) {
    saved = null; // storage refused (private mode): the browser's language still applies
  }
  setLanguage(pick(saved, navigator.languages || [navigator.language]), false);
}

export function setLanguage(lang, remember = true) {
  current = LANGUAGES[lang] ? lang : "en";
  document.documentElement.lang = current;
  if (remember) {
    try {
      localStorage.setItem(STORE, current);
    } catch (e) {
      console.warn("language not remembered: storage refused");
    }
  }
}

export function _(text) {
  const t = current === "en" ? null : data.messages[current]?.[text];
  return typeof t === "string" && t ? t : text;
}

export function ngettext(singular, plural, n) {
  if (current !== "en") {
    const forms = data.messages[current]?.[singular];
    if (Array.isArray(forms)) return forms[Math.min(PLURAL[current](n), forms.length - 1)];
  }
  return n === 1 ? singular : plural;
}

export function fmt(text, values) {
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
}

// A purpose's name in the current language, from the default purpose table.
export function purposeName(code) {
  const names = data.purposes[String(code)];
  if (!names) return fmt(_("Purpose {code}"), { code });
  return names[current] || names.en;
}

// The two largest units that are not zero: "2 hours 5 minutes", "3 days", "4 minutes 10
// seconds", "0 seconds"; a countdown that moves every second in its last hour.
export function span(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const units = [
    [Math.floor(s / 86400), (n) => ngettext("{n} day", "{n} days", n)],
    [Math.floor(s / 3600) % 24, (n) => ngettext("{n} hour", "{n} hours", n)],
    [Math.floor(s / 60) % 60, (n) => ngettext("{n} minute", "{n} minutes", n)],
    [s % 60, (n) => ngettext("{n} second", "{n} seconds", n)],
  ];
  const first = units.findIndex(([n]) => n > 0);
  if (first < 0) return fmt(units[3][1](0), { n: 0 });
  return units.slice(first, first + 2).filter(([n]) => n > 0)
    .map(([n, word]) => fmt(word(n), { n })).join(" ");
}
