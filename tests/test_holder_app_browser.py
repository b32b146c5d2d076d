"""The holder app in a real browser, end to end: ``passgate-collector serve`` over real HTTP
serves ``/holder/``, Debian's headless Chromium (chromedriver, ``webdriver_support``) runs it
at a phone's size (390 x 844), and the checkpoint's own decoder and verifier judge what the
page shows.

Rules tested (issue 16): the app creates a key whose private half cannot be exported
(``extractable: false``, ``exportKey`` rejects); its key QR, read from a screenshot by the
project's decoder, is the key code it shows as text; a pass issued for that key (Python
issuer) is imported from a link's fragment; the live code on the screen, decoded from a
screenshot and verified, is ACCEPTED; the same screenshot presented after the freshness
window is DENIED (too old); a level 2 made by another holder's key is DENIED; a pass bound to
another key is refused by the app; showing a code makes no request; the app works offline
after its first load; it speaks English, Russian and Tatar with the catalogs' plural forms
and fits 390 px; its JavaScript encodings equal the Python reference byte for byte.

Screenshots go to $PASSGATE_SCREENSHOT_DIR when set (``bench/holder_screens.py`` measures the
read rate of live codes off them). Skipped only when Chromium or chromedriver is missing.
"""

from __future__ import annotations

import base64
import gettext
import hashlib
import os
import shutil
import time
import urllib.parse
from pathlib import Path

import cbor2
import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from PIL import Image

from passgate.cli.issue import holder_link
from passgate.hardware.decode import default_decoder
from passgate.passes import base45
from passgate.passes.cose import sig_structure
from passgate.passes.verdict import Binding, Reason
from test_collector_browser import Live
from webdriver_support import CHROMEDRIVER, CHROMIUM, Browser

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Chromium not installed (Debian packages: chromium chromium-driver)"),
]
PHONE = (390, 844)
ZONE = "gate-1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("holder")
    server = Live(tmp)
    browser = Browser(tmp, *PHONE)
    try:
        yield server, browser, tmp
    finally:
        browser.close()
        if server.proc.poll() is None:
            server.stop()


def base_url(server: Live) -> str:
    return f"http://127.0.0.1:{server.port}/holder/"


def shot(browser: Browser, tmp: Path, name: str) -> Path:
    path = tmp / name
    browser.screenshot(path)
    keep = os.environ.get("PASSGATE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(path, Path(keep) / name)
    return path


def decode_png(path: Path) -> list[str]:
    """What the checkpoint's decoder reads in a screenshot (grayscale, as the camera gives)."""
    with Image.open(path) as img:
        frame = np.asarray(img.convert("L"))
    return default_decoder().decode(frame)


def app_key(site) -> str:
    """The key code of the app in this browser, created on first use."""
    server, browser, _tmp = site
    browser.open(base_url(server))
    browser.wait_for("return document.body.dataset.ready")
    if browser.js("return document.getElementById('key').hidden && "
                  "document.getElementById('pass').hidden"):
        browser.click("#create")
    text = browser.wait_for("return document.getElementById('key-text').textContent")
    return text.replace(" ", "")


def checkpoint_verdict(trust, text: str, now: int):
    """What a checkpoint of zone ``ZONE`` decides for ``text`` at ``now``, with a trusted
    clock and a policy that requires holder binding for every purpose: the verifier (both
    levels, the default 30 s window) and then ``decide`` (the binding policy)."""
    from passgate.checkpoint.decide import FRESH, CheckpointPolicy, decide
    from passgate.clock.clock import ClockState, TimeReading
    from passgate.passes.verify import Verifier

    verdict = Verifier(trust).check(text, now, ZONE)
    policy = CheckpointPolicy(holder_binding=("*",))
    return decide(verdict, TimeReading(now, ClockState.TRUSTED), FRESH, False, policy).verdict


def issue_for(point33: bytes, issuer, now: int) -> str:
    return issuer.issue("shopping", [ZONE], not_before=now - 60, duration_s=2 * 3600,
                        holder_key=point33)


def show_live(site, pass_text: str) -> dict:
    """Open the pass link, show the live code; returns the t and n the page signed."""
    server, browser, _tmp = site
    if not browser.js("return document.getElementById('pass').hidden"):
        browser.click("#forget")  # so the pass shown below is this one, not one kept before
        browser.wait_for("return document.getElementById('pass').hidden")
    browser.open(holder_link(base_url(server), pass_text))  # what passgate issue --app-url prints
    browser.wait_for("return !document.getElementById('pass').hidden")
    browser.click("#show")
    browser.wait_for("return document.getElementById('live').dataset.t")
    return browser.js("return Object.assign({}, document.getElementById('live').dataset)")


def test_the_key_qr_is_the_key_code_and_the_issuer_reads_it(site):
    from passgate.passes.holder import format_holder_key, parse_holder_key

    code = app_key(site)
    _server, browser, tmp = site
    assert code.startswith("PGK1:") and len(code) == 5 + 56
    point = parse_holder_key(code)
    assert format_holder_key(point) == code
    read = decode_png(shot(browser, tmp, "holder-key-390.png"))
    assert read == [code]  # what passgate issue --holder-key-image reads


def test_live_code_screenshot_is_accepted_then_too_old_after_the_window(site, issuer, trust):
    from passgate.passes.holder import parse_holder_key

    point = parse_holder_key(app_key(site))
    now = int(time.time())
    pass_text = issue_for(point, issuer, now)
    signed = show_live(site, pass_text)
    _server, browser, tmp = site
    assert browser.js("return document.getElementById('live-hint').textContent").startswith(
        "Turn the screen brightness up")
    assert "Shopping" in browser.js("return document.getElementById('live-purpose').textContent")
    read = decode_png(shot(browser, tmp, "holder-live-390.png"))
    assert len(read) == 1 and read[0].startswith("PG2:")
    live = read[0]
    t = int(signed["t"])
    assert abs(t - now) < 60
    verdict = checkpoint_verdict(trust, live, t + 2)
    assert verdict.accepted and verdict.reason is Reason.VALID, verdict
    assert verdict.binding is Binding.LIVE and verdict.live_t == t
    late = checkpoint_verdict(trust, live, t + 31)  # the default window is 30 s
    assert not late.accepted and late.reason is Reason.LIVE_CODE_STALE
    assert "show the live code, not a picture" in late.detail
    # the static level 1 alone, where binding is required: denied too
    bare = checkpoint_verdict(trust, pass_text, t + 2)
    assert not bare.accepted and bare.reason is Reason.LIVE_CODE_REQUIRED
    browser.click("#close")


def test_a_level2_by_another_holders_key_is_denied(site, issuer, trust):
    from passgate.passes.holder import make_live_code, parse_holder_key

    point = parse_holder_key(app_key(site))
    now = int(time.time())
    pass_text = issue_for(point, issuer, now)
    other = ec.generate_private_key(ec.SECP256R1())
    forged = make_live_code(pass_text, other, now, 1)
    verdict = checkpoint_verdict(trust, forged, now + 1)
    assert not verdict.accepted and verdict.reason is Reason.HOLDER_MISMATCH
    # ... while the same pass shown by the app itself passes (the pass is not the problem)
    signed = show_live(site, pass_text)
    _server, browser, tmp = site
    read = decode_png(shot(browser, tmp, "holder-live-2-390.png"))
    assert checkpoint_verdict(trust, read[0], int(signed["t"]) + 1).accepted
    browser.click("#close")


def test_the_app_refuses_a_pass_bound_to_another_key(site, issuer):
    from passgate.passes.holder import compressed_point

    app_key(site)
    server, browser, _tmp = site
    other = compressed_point(ec.generate_private_key(ec.SECP256R1()))
    pass_text = issue_for(other, issuer, int(time.time()))
    if not browser.js("return document.getElementById('pass').hidden"):
        browser.click("#forget")  # start from no pass, so a kept one cannot hide a refusal
        browser.wait_for("return document.getElementById('pass').hidden")
    browser.open(base_url(server) + "#pass=" + urllib.parse.quote(pass_text, safe=""))
    message = browser.wait_for("const m = document.getElementById('message'); "
                               "return !m.hidden && m.textContent")
    assert "another phone's key" in message
    assert browser.js("return document.getElementById('pass').hidden")


def test_the_private_key_cannot_be_exported(site):
    app_key(site)
    _server, browser, _tmp = site
    result = browser.js_async("""
        const done = arguments[arguments.length - 1];
        const req = indexedDB.open("passgate-holder");
        req.onsuccess = async () => {
          const get = req.result.transaction("kv").objectStore("kv").get("key");
          get.onsuccess = async () => {
            const key = get.result.privateKey, out = {
              type: key.type, extractable: key.extractable, usages: key.usages,
              algorithm: key.algorithm.name + "/" + key.algorithm.namedCurve};
            for (const format of ["pkcs8", "jwk", "raw"]) {
              try {
                await crypto.subtle.exportKey(format, key);
                out[format] = "exported";
              } catch (e) {
                out[format] = e.name;
              }
            }
            done(out);
          };
        };""")
    assert result["type"] == "private" and result["extractable"] is False
    assert result["usages"] == ["sign"] and result["algorithm"] == "ECDSA/P-256"
    assert result["pkcs8"] == result["jwk"] == "InvalidAccessError"
    assert result["raw"] != "exported"


def test_showing_a_code_makes_no_request(site, issuer):
    from passgate.passes.holder import parse_holder_key

    point = parse_holder_key(app_key(site))
    pass_text = issue_for(point, issuer, int(time.time()))
    show_live(site, pass_text)
    _server, browser, _tmp = site
    before = browser.js("return performance.getEntriesByType('resource').length")
    browser.click("#close")
    browser.click("#show")
    first = browser.js("return document.getElementById('live').dataset.n")
    browser.wait_for(f"return document.getElementById('live').dataset.n !== '{first}'",
                     timeout=15)  # refreshed by the 5 s timer
    assert browser.js("return performance.getEntriesByType('resource').length") == before
    browser.click("#close")


# -- the app's encodings against the Python reference ------------------------------------

CODEC = """
const done = arguments[arguments.length - 1];
import(new URL("codec.js", location.href).href).then(async (c) => {
  try { done(await (%s)(c)); } catch (e) { done({error: String(e)}); }
});"""


def run_codec(browser: Browser, body: str, *args):
    result = browser.js_async(CODEC % body, *args)
    assert not (isinstance(result, dict) and "error" in result), result
    return result


def test_base45_and_base32_equal_the_python_reference(site):
    app_key(site)
    _server, browser, _tmp = site
    samples = [b"", b"\x00", b"\xff\xff", bytes(range(256)), hashlib.sha256(b"x").digest() * 3]
    out = run_codec(browser, """(c) => arguments[0].map((hex) => {
        const b = Uint8Array.from(hex.match(/../g) || [], (h) => parseInt(h, 16));
        return [c.base45Encode(b), c.base32Encode(b),
                Array.from(c.base45Decode(c.base45Encode(b))).length];
    })""", [s.hex() for s in samples])
    for data, (b45, b32, back) in zip(samples, out, strict=True):
        assert b45 == base45.encode(data)
        assert b32 == base64.b32encode(data).decode().rstrip("=")
        assert back == len(data)


def test_key_code_and_live_code_bytes_equal_the_python_reference(site, issuer):
    """A fixed P-256 key imported into WebCrypto (for this test only; the app's own keys are
    made non-extractable), a fixed pass, t and n: the key code and every byte of the live
    code but the ECDSA signature (random by design) equal Python's, and the signature
    verifies under the key over the Sig_structure with the pass as external AAD."""
    from passgate.passes.holder import (
        compressed_point,
        format_holder_key,
        make_live_code,
        parse_live_text,
    )

    app_key(site)
    _server, browser, _tmp = site
    private = ec.derive_private_key(int.from_bytes(hashlib.sha256(b"holder").digest(), "big")
                                    % (2**255), ec.SECP256R1())
    numbers = private.private_numbers()
    point = compressed_point(private)
    pass_text = issue_for(point, issuer, 1_767_261_600)
    t, n = 1_767_261_700, 4_000_000_000

    def b64u(i: int) -> str:
        return base64.urlsafe_b64encode(i.to_bytes(32, "big")).decode().rstrip("=")

    jwk = {"kty": "EC", "crv": "P-256", "x": b64u(numbers.public_numbers.x),
           "y": b64u(numbers.public_numbers.y), "d": b64u(numbers.private_value)}
    out = run_codec(browser, """async (c) => {
        const [jwk, passText, t, n] = arguments;
        const key = await crypto.subtle.importKey("jwk", jwk, {name: "ECDSA", namedCurve: "P-256"},
                                                  false, ["sign"]);
        const pub = await crypto.subtle.importKey("jwk", {kty: "EC", crv: "P-256", x: jwk.x,
            y: jwk.y}, {name: "ECDSA", namedCurve: "P-256"}, true, ["verify"]);
        const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pub));
        const pass = c.readPass(passText);
        return {keyCode: await c.formatHolderKey(c.compressPoint(raw)),
                cnfMatches: c.equalBytes(pass.point33, c.compressPoint(raw)),
                purpose: pass.claims.purpose, zones: pass.claims.zones,
                live: await c.makeLiveCode(pass.cose, key, t, n)};
    }""", jwk, pass_text, t, n)
    assert out["keyCode"] == format_holder_key(point)
    assert out["cnfMatches"] is True and out["zones"] == [ZONE]
    js = parse_live_text(out["live"])
    py = parse_live_text(make_live_code(pass_text, private, t, n))
    assert (js.l1, js.payload, js.t, js.n) == (py.l1, py.payload, t, n)
    assert js.verifies(point)
    # and by hand, with nothing of the package but the Sig_structure
    tbs = sig_structure(b"\xa1\x01\x26", cbor2.dumps([t, n]), js.l1)
    sig = js.signature
    private.public_key().verify(
        encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
        tbs, ec.ECDSA(hashes.SHA256()))
    raw = base45.decode(out["live"][4:])
    assert cbor2.loads(raw) == [js.l1, cbor2.dumps(cbor2.CBORTag(18, [
        b"\xa1\x01\x26", {}, cbor2.dumps([t, n]), sig]))]


# -- languages, width, offline ------------------------------------------------------------

def test_languages_plurals_and_a_phone_width(site):
    from babel.messages.pofile import read_po

    from passgate_collector.holder import APP_DIR

    app_key(site)
    server, browser, tmp = site
    for lang, title in (("ru", "Пропуск passgate"), ("tt", "passgate пропускы")):
        browser.click(f"button[data-lang={lang}]")
        assert browser.js("return document.getElementById('title').textContent") == title
        assert browser.js("return document.documentElement.lang") == lang
        width, inner = browser.js("return [document.documentElement.scrollWidth, innerWidth]")
        assert width <= inner == PHONE[0]
        shot(browser, tmp, f"holder-{lang}-390.png")
        browser.open(base_url(server))  # remembered across a reload
        browser.wait_for("return document.body.dataset.ready")
        assert browser.js("return document.documentElement.lang") == lang
        # the app's plural rule is the catalog's, form for form, and the forms are its own
        po = read_po((APP_DIR / "locale" / lang / "LC_MESSAGES" / "passgate_holder.po").open(
            "rb"), locale=lang)
        numbers = list(range(1, 60))  # 1, 2-4, 5-20, 21, 22-24...: every Russian form
        js_words = run_codec(browser, """async (c) => {
            const i18n = await import(new URL("i18n.js", location.href).href);
            return arguments[0].map((n) => [i18n.span(n * 60), i18n.span(n * 3600 + 60)]);
        }""", numbers)
        plural = gettext.c2py(po.plural_expr)
        (minute,) = [m for m in po if m.id == ("{n} minute", "{n} minutes")]
        (hour,) = [m for m in po if m.id == ("{n} hour", "{n} hours")]
        (day,) = [m for m in po if m.id == ("{n} day", "{n} days")]
        for n, (minutes, hours) in zip(numbers, js_words, strict=True):
            assert minutes == minute.string[plural(n)].replace("{n}", str(n)), (lang, n)
            if n < 24:
                assert hours == " ".join((hour.string[plural(n)].replace("{n}", str(n)),
                                          minute.string[plural(1)].replace("{n}", "1")))
            else:
                assert hours.startswith(day.string[plural(n // 24)].replace("{n}", str(n // 24)))
    browser.click("button[data-lang=en]")
    assert browser.js("return document.getElementById('title').textContent") == "passgate pass"


def test_the_app_works_offline_after_its_first_load(site, issuer, trust):
    """Last in this file: it stops the server. The service worker took the files on the
    first load; the page then starts, shows a fresh live code, and it is accepted."""
    from passgate.passes.holder import parse_holder_key

    point = parse_holder_key(app_key(site))
    server, browser, tmp = site
    assert browser.js_async("const done = arguments[arguments.length - 1]; "
                            "navigator.serviceWorker.ready.then(() => done(true));")
    browser.open(base_url(server))  # the next load is the service worker's
    browser.wait_for("return document.body.dataset.ready")
    assert browser.js("return navigator.serviceWorker.controller !== null")
    pass_text = issue_for(point, issuer, int(time.time()))
    show_live(site, pass_text)
    browser.click("#close")
    assert server.stop() == 0
    browser.open(base_url(server))
    browser.wait_for("return document.body.dataset.ready")
    browser.click("#show")
    signed = browser.wait_for("return document.getElementById('live').dataset.t")
    read = decode_png(shot(browser, tmp, "holder-live-offline-390.png"))
    assert checkpoint_verdict(trust, read[0], int(signed) + 1).accepted


def test_the_app_reads_passes_as_strictly_as_the_checkpoint(site, issuer):
    """Garbage, a non-deterministic re-encoding and trailing bytes are refused; a pass without
    a holder key reads as unbound; a pasted pass keeps its inner spaces (base45 has them)."""
    app_key(site)
    _server, browser, _tmp = site
    unbound = issuer.issue("shopping", [ZONE], not_before=1_767_261_600, duration_s=3600)
    raw = base45.decode(unbound[4:])
    longer_head = raw[:2] + b"\x58" + bytes([raw[2] & 0x1F]) + raw[3:]  # bstr head 1 byte longer
    texts = {"garbage": "PG1:not base45!", "trailing": "PG1:" + base45.encode(raw + b"\x00"),
             "not_shortest": "PG1:" + base45.encode(longer_head), "other": "PG2:" + unbound[4:],
             "unbound": "\n  " + unbound + "\r\n"}
    out = run_codec(browser, """(c) => {
        const res = {};
        for (const [name, text] of Object.entries(arguments[0])) {
          try {
            const p = c.readPass(text);
            res[name] = {bound: p.point33 !== null, zones: p.claims.zones, cose: p.cose.length};
          } catch (e) {
            res[name] = e instanceof c.FormatError ? "refused" : "crashed: " + e;
          }
        }
        return res;
    }""", texts)
    for name in ("garbage", "trailing", "not_shortest", "other"):
        assert out[name] == "refused", (name, out[name])
    assert out["unbound"] == {"bound": False, "zones": [ZONE], "cose": len(raw)}
    assert " " in unbound  # the pass has base45 spaces, and they survived the paste
