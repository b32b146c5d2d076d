// The holder app's screens: create the key, hand over its code, import the pass, show the
// live code. Rules kept here (docs/holder-app.md):
// - the private key is made non-extractable and never leaves IndexedDB (store.js);
// - a browser without WebCrypto, IndexedDB or a secure context is refused with a message:
//   there is no weaker fallback (a key in page memory could be copied out, which is the
//   very thing a holder-bound pass is there to stop);
// - a pass is kept only if its cnf key is this phone's key;
// - showing a code sends nothing anywhere: the page makes no request after it has loaded
//   (the service worker answers from its cache), and the pass arrives in the URL fragment,
//   which browsers never send to a server.

import qrcode from "./vendor/qrcode.mjs";
import * as codec from "./codec.js";
import * as i18n from "./i18n.js";
import { _, fmt } from "./i18n.js";
import * as store from "./store.js";

export const REFRESH_S = 5; // a new live code every 5 s (and at every show)

function texts() {
  return {
    key_title: _("This phone's key"),
    key_explain: _("Your pass will work only with this phone. First the phone makes its own key; it never leaves this phone."),
    create: _("Create my key"),
    key_give: _("Show this code to the issuer, or send them the text below it."),
    key_safe: _("The key stays in this browser and cannot be copied out of it. If you clear the browser's data, you will need a new pass."),
    import_title: _("Add your pass"),
    import_paste: _("Open the link you were sent, or paste the pass text (PG1:…) here:"),
    import: _("Add the pass"),
    pass_title: _("Your pass"),
    purpose: _("Purpose"),
    zones: _("Zones"),
    valid: _("Valid"),
    until: _("Until"),
    show: _("Show my pass"),
    forget: _("Remove this pass"),
    brightness: _("Turn the screen brightness up and hold the phone still in front of the camera."),
    close: _("Close"),
  };
}

const $ = (id) => document.getElementById(id);
const state = { key: null, pass: null, passText: null, timers: [] };

function say(text, bad = true) {
  const el = $("message");
  el.textContent = text;
  el.className = bad ? "bad" : "good";
  el.hidden = !text;
}

function render() {
  document.title = _("passgate pass");
  $("title").textContent = _("passgate pass");
  const t = texts();
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t[el.dataset.t];
  const nav = $("languages");
  nav.replaceChildren(...Object.entries(i18n.LANGUAGES).map(([code, name]) => {
    const b = document.createElement("button");
    b.textContent = name;
    b.lang = code;
    b.dataset.lang = code;
    b.className = code === i18n.language() ? "lang current" : "lang";
    b.addEventListener("click", () => {
      i18n.setLanguage(code);
      render();
    });
    return b;
  }));
  $("key-new").hidden = Boolean(state.key);
  $("key").hidden = !state.key || Boolean(state.pass);
  $("import").hidden = !state.key || Boolean(state.pass);
  $("pass").hidden = !state.pass;
  if (state.key && !state.pass) drawQr($("key-qr"), state.key.text, Math.min(innerWidth - 48, 320));
  // Grouped by four to read out or type; readers of the code ignore the spaces.
  if (state.key) {
    $("key-text").textContent = codec.KEY_PREFIX
      + state.key.text.slice(codec.KEY_PREFIX.length).replace(/(.{4})(?!$)/g, "$1 ");
  }
  if (state.pass) renderPass();
}

// Validity in words, from the phone's clock (the checkpoint decides with its own).
function validity(claims, now) {
  if (now < claims.notBefore) return [fmt(_("not yet: from {date}"), { date: dateText(claims.notBefore) }), false];
  if (now >= claims.expires) return [_("expired"), false];
  return [fmt(_("for {span} more"), { span: i18n.span(claims.expires - now) }), true];
}

function dateText(t) {
  // Browsers' Intl seldom has Tatar: then the numeric form Tatarstan reads, 07.12.2026, 18:00
  // (Russian's short date), rather than an English month name.
  const tatar = i18n.language() === "tt";
  try {
    return new Intl.DateTimeFormat(tatar ? ["tt", "ru"] : i18n.language(),
      { dateStyle: tatar ? "short" : "medium", timeStyle: "short" }).format(new Date(t * 1000));
  } catch (e) {
    return new Date(t * 1000).toLocaleString();
  }
}

function purposeText(claims) {
  const name = i18n.purposeName(claims.purpose);
  return claims.hint ? `${name} · ${claims.hint}` : name;
}

function renderPass() {
  const c = state.pass.claims;
  const now = Math.floor(Date.now() / 1000);
  $("pass-purpose").textContent = purposeText(c);
  $("pass-zones").textContent = c.zones.join(", ");
  $("pass-remaining").textContent = validity(c, now)[0];
  $("pass-until").textContent = dateText(c.expires);
}

// A QR of text at ECC M, alphanumeric mode (PG2:, PGK1: and base45 are all in the QR
// alphanumeric set), the smallest version, drawn with whole device pixels per module and a
// quiet zone of 4 modules, black on white.
function drawQr(canvas, text, cssSize) {
  const qr = qrcode(0, "M");
  qr.addData(text, "Alphanumeric");
  qr.make();
  const count = qr.getModuleCount(), total = count + 8;
  const dpr = Math.max(1, Math.floor(devicePixelRatio || 1));
  const cell = Math.max(1, Math.floor((cssSize * dpr) / total));
  canvas.width = canvas.height = cell * total;
  canvas.style.width = canvas.style.height = `${(cell * total) / dpr}px`;
  canvas.dataset.version = String((count - 17) / 4);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#000";
  for (let r = 0; r < count; r++) {
    for (let c = 0; c < count; c++) {
      if (qr.isDark(r, c)) ctx.fillRect((c + 4) * cell, (r + 4) * cell, cell, cell);
    }
  }
}

async function loadKey() {
  const record = await store.get("key");
  if (!record) return null;
  const point33 = codec.compressPoint(record.publicRaw);
  return { ...record, point33, text: await codec.formatHolderKey(point33) };
}

async function createKey() {
  try {
    await store.createKey();
    state.key = await loadKey();
    say("");
  } catch (e) {
    say(_("This browser could not make a key. Use an up-to-date browser."));
    console.error("key creation failed", e);
  }
  render();
}

// Reads a pass text and keeps it if it is bound to this phone's key; says why not otherwise.
async function importPass(text) {
  let pass;
  try {
    pass = codec.readPass(text);
  } catch (e) {
    say(_("This is not a passgate pass. Check that the whole text was copied."));
    return false;
  }
  if (!pass.point33) {
    say(_("This pass is not bound to a phone: show it as it is, it does not need this app."));
    return false;
  }
  if (!state.key || !codec.equalBytes(pass.point33, state.key.point33)) {
    say(_("This pass was issued for another phone's key. Ask the issuer for a pass for this phone's key."));
    return false;
  }
  await store.put("pass", codec.cleanPass(text));
  state.pass = pass;
  state.passText = text;
  say(_("Pass added."), false);
  render();
  return true;
}

// ---- the live code ----------------------------------------------------------------------
async function refreshLive() {
  const t = Math.floor(Date.now() / 1000);
  const n = await store.nextCounter();
  const text = await codec.makeLiveCode(state.pass.cose, state.key.privateKey, t, n);
  const live = $("live");
  const room = Math.min(innerWidth, innerHeight - 170);
  drawQr($("live-qr"), text, Math.max(200, room));
  live.dataset.t = String(t);
  live.dataset.n = String(n);
}

function tickLive() {
  const c = state.pass.claims;
  const [words, ok] = validity(c, Math.floor(Date.now() / 1000));
  $("live-purpose").textContent = purposeText(c);
  $("live-remaining").textContent = words;
  $("live-remaining").className = ok ? "good" : "bad";
}

async function showLive() {
  const live = $("live");
  // Full screen where the browser allows it (it must be asked for within the tap itself);
  // the page's own overlay already covers the whole viewport where it does not.
  document.documentElement.requestFullscreen?.()?.catch(() => null);
  live.hidden = false;
  document.body.classList.add("showing");
  tickLive();
  try {
    await refreshLive();
  } catch (e) {
    console.error("live code failed", e);
    say(_("The live code could not be made. Reload the page and try again."));
    hideLive();
    return;
  }
  state.timers.push(setInterval(() => refreshLive().catch((e) => console.error(e)), REFRESH_S * 1000));
  state.timers.push(setInterval(tickLive, 1000));
  try {
    state.wake = await navigator.wakeLock?.request("screen");
  } catch (e) {
    state.wake = null; // no wake lock (battery saver, old browser): the screen may dim
  }
}

function hideLive() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.wake?.release?.();
  state.wake = null;
  $("live").hidden = true;
  document.body.classList.remove("showing");
  if (document.fullscreenElement) document.exitFullscreen().catch(() => null);
  $("live-qr").width = 0; // the last code is not left drawn behind the page
}

async function forget() {
  say(""); // first: a message that comes while the pass is being removed stays
  await store.remove("pass");
  state.pass = null;
  render();
}

// ---- start ------------------------------------------------------------------------------
function fragmentPass() {
  const hash = location.hash;
  if (!hash.startsWith("#pass=")) return null;
  history.replaceState(null, "", location.pathname + location.search); // not kept in the URL
  const raw = hash.slice("#pass=".length);
  try {
    return decodeURIComponent(raw);
  } catch (e) {
    return raw; // a link whose text was not percent-encoded: try it as it is
  }
}

async function start() {
  i18n.start();
  render();
  if (!store.supported()) {
    for (const id of ["key-new", "key", "import", "pass"]) $(id).hidden = true;
    $("unsupported").hidden = false;
    $("unsupported-text").textContent = _("This browser cannot keep a key safely (it lacks WebCrypto or IndexedDB, or the page is not on https). Open the app in an up-to-date browser over https.");
    return;
  }
  $("create").addEventListener("click", createKey);
  $("import-button").addEventListener("click", () => importPass($("pass-text").value));
  $("show").addEventListener("click", showLive);
  $("close").addEventListener("click", hideLive);
  $("forget").addEventListener("click", forget);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && !$("live").hidden) hideLive(); // a new code at every show
  });
  state.key = await loadKey();
  const saved = await store.get("pass");
  if (saved) {
    try {
      state.pass = codec.readPass(saved);
    } catch (e) {
      console.error("the kept pass cannot be read", e);
    }
  }
  const linked = fragmentPass();
  render();
  if (linked) await importPass(linked);
  addEventListener("hashchange", () => { // a pass link opened while the app is open
    const text = fragmentPass();
    if (text) importPass(text);
  });
  document.body.dataset.ready = "1";
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch((e) => console.warn("no offline copy", e));
  }
}

start();
