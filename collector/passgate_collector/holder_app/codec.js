// The holder app's wire formats (docs/pass-format.md, spec 1.2), no DOM and no storage here:
// base45 (RFC 9285), base32 (RFC 4648), the few CBOR items the passes use (RFC 8949,
// deterministic encoding only), the holder key text code PGK1:, reading an issued PG1: pass
// and its cnf key, and building the PG2: live code (a COSE_Sign1 made with the holder's
// WebCrypto key over [t, n], the whole level-1 pass as external AAD).
//
// Rules kept here: a pass is read strictly (the same bytes the checkpoint reads, in the one
// deterministic encoding, or refused with a reason); nothing here sends anything anywhere.
// tests/test_holder_app_browser.py compares every function with the Python reference.

export const PASS_PREFIX = "PG1:";
export const LIVE_PREFIX = "PG2:";
export const KEY_PREFIX = "PGK1:";

// ---- base45 (RFC 9285) -----------------------------------------------------------------
const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

export function base45Encode(bytes) {
  let out = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = bytes[i] * 256 + bytes[i + 1];
    out += B45[n % 45] + B45[Math.floor(n / 45) % 45] + B45[Math.floor(n / 2025)];
  }
  if (bytes.length % 2) {
    const n = bytes[bytes.length - 1];
    out += B45[n % 45] + B45[Math.floor(n / 45)];
  }
  return out;
}

export function base45Decode(text) {
  const out = [];
  const digit = (ch) => {
    const d = B45.indexOf(ch);
    if (d < 0) throw new FormatError("bad base45");
    return d;
  };
  for (let i = 0; i < text.length; i += 3) {
    const chunk = text.slice(i, i + 3);
    if (chunk.length === 1) throw new FormatError("bad base45");
    const n = chunk.length === 3
      ? digit(chunk[0]) + digit(chunk[1]) * 45 + digit(chunk[2]) * 2025
      : digit(chunk[0]) + digit(chunk[1]) * 45;
    if (chunk.length === 3) {
      if (n > 0xffff) throw new FormatError("bad base45");
      out.push(n >> 8, n & 0xff);
    } else {
      if (n > 0xff) throw new FormatError("bad base45");
      out.push(n);
    }
  }
  return Uint8Array.from(out);
}

// ---- base32 (RFC 4648, upper case, no padding) -------------------------------------------
const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export function base32Encode(bytes) {
  let out = "", bits = 0, value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

export function base32Decode(text) {
  const out = [];
  let bits = 0, value = 0;
  for (const ch of text) {
    const d = B32.indexOf(ch);
    if (d < 0) throw new FormatError("bad base32");
    value = (value << 5) | d;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
    value &= (1 << bits) - 1;
  }
  if (value !== 0) throw new FormatError("bad base32"); // leftover bits must be zero
  return Uint8Array.from(out);
}

export class FormatError extends Error {}

// ---- CBOR: encoding heads, and a strict reader ---------------------------------------------
export function head(major, n) {
  const m = major << 5;
  if (n < 24) return [m | n];
  if (n < 0x100) return [m | 24, n];
  if (n < 0x10000) return [m | 25, n >> 8, n & 0xff];
  if (n < 0x100000000) return [m | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  const hi = Math.floor(n / 0x100000000), lo = n >>> 0;
  return [m | 27, hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff,
    lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff];
}

export function bstr(bytes) {
  return concat(Uint8Array.from(head(2, bytes.length)), bytes);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// Reads one item; maps keep integer keys as numbers (in a JS Map); tag 18 comes back as
// {tag, value}. Only what passes contain: unsigned and negative integers, byte and text
// strings, arrays, maps, true/false, tags. Anything else, indefinite lengths or a
// non-shortest head, is refused; the caller re-encodes to check the whole is deterministic.
class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.at = 0;
  }

  byte() {
    if (this.at >= this.b.length) throw new FormatError("truncated CBOR");
    return this.b[this.at++];
  }

  arg(info) {
    if (info < 24) return info;
    const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (!size) throw new FormatError("CBOR item not allowed here");
    let n = 0;
    for (let i = 0; i < size; i++) n = n * 256 + this.byte();
    if (n > Number.MAX_SAFE_INTEGER) throw new FormatError("CBOR number too large");
    if (head(0, n).length !== 1 + size) throw new FormatError("CBOR not in its shortest form");
    return n;
  }

  item(depth = 0) {
    if (depth > 8) throw new FormatError("CBOR nested too deeply");
    const first = this.byte();
    const major = first >> 5, info = first & 31;
    if (major === 7) {
      if (info === 20) return false;
      if (info === 21) return true;
      throw new FormatError("CBOR simple value not allowed");
    }
    const n = this.arg(info);
    switch (major) {
      case 0: return n;
      case 1: return -1 - n;
      case 2: case 3: {
        if (this.at + n > this.b.length) throw new FormatError("truncated CBOR");
        const raw = this.b.slice(this.at, this.at + n);
        this.at += n;
        if (major === 2) return raw;
        return new TextDecoder("utf-8", { fatal: true }).decode(raw);
      }
      case 4: {
        const items = [];
        for (let i = 0; i < n; i++) items.push(this.item(depth + 1));
        return items;
      }
      case 5: {
        const map = new Map();
        for (let i = 0; i < n; i++) {
          const k = this.item(depth + 1);
          if (typeof k !== "number") throw new FormatError("map keys must be integers");
          if (map.has(k)) throw new FormatError("duplicate map key");
          map.set(k, this.item(depth + 1));
        }
        return map;
      }
      default: return { tag: n, value: this.item(depth + 1) };
    }
  }
}

export function cborRead(bytes) {
  const r = new Reader(bytes);
  const value = r.item();
  if (r.at !== bytes.length) throw new FormatError("bytes after the CBOR item");
  return value;
}

// Deterministic encoding of what cborRead returns (shortest heads; map keys shorter encoded
// key first, then bytewise: cbor2's canonical order, the checkpoint's), to check that a pass
// is in its one encoding, as the checkpoint does.
export function cborWrite(value) {
  if (value === true) return Uint8Array.of(0xf5);
  if (value === false) return Uint8Array.of(0xf4);
  if (typeof value === "number") {
    return Uint8Array.from(value >= 0 ? head(0, value) : head(1, -1 - value));
  }
  if (typeof value === "string") return concat(Uint8Array.from(head(3, utf8(value).length)), utf8(value));
  if (value instanceof Uint8Array) return bstr(value);
  if (Array.isArray(value)) {
    return concat(Uint8Array.from(head(4, value.length)), ...value.map(cborWrite));
  }
  if (value instanceof Map) {
    const pairs = [...value].map(([k, v]) => [cborWrite(k), cborWrite(v)]);
    pairs.sort((a, b) => a[0].length - b[0].length || compareBytes(a[0], b[0]));
    return concat(Uint8Array.from(head(5, pairs.length)), ...pairs.flat());
  }
  if (value && typeof value.tag === "number") {
    return concat(Uint8Array.from(head(6, value.tag)), cborWrite(value.value));
  }
  throw new FormatError("cannot encode");
}

function utf8(text) {
  return new TextEncoder().encode(text);
}

export function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

export function equalBytes(a, b) {
  return a.length === b.length && compareBytes(a, b) === 0;
}

// ---- the holder key ----------------------------------------------------------------------
// WebCrypto exports a P-256 public key as 65 bytes 04 || x || y; the pass carries the
// 33-byte compressed form 02/03 || x (03: y odd).
export function compressPoint(raw65) {
  if (raw65.length !== 65 || raw65[0] !== 4) throw new FormatError("not an uncompressed P-256 point");
  return concat(Uint8Array.of(raw65[64] & 1 ? 3 : 2), raw65.slice(1, 33));
}

export async function formatHolderKey(point33) {
  const check = new Uint8Array(await crypto.subtle.digest("SHA-256", point33)).slice(0, 2);
  return KEY_PREFIX + base32Encode(concat(point33, check));
}

// ---- the issued pass (level 1) -----------------------------------------------------------
const CLAIM = { iss: 1, exp: 4, nbf: 5, iat: 6, cti: 7, cnf: 8, passgate: -65537 };

// A pasted or linked pass text without what a paste adds around it: leading white space and
// trailing line endings. Not the spaces inside, nor a trailing space: both are base45.
export function cleanPass(text) {
  return String(text).replace(/^\s+/, "").replace(/[\r\n]+$/, "");
}

// Reads an issued pass text: {cose (the level-1 bytes), claims, point33 (its cnf key, or
// null)}. Does not check the issuer's signature: the checkpoint does, with keys the app does
// not have. Throws FormatError saying what is wrong.
export function readPass(text) {
  const t = cleanPass(text);
  if (!t.startsWith(PASS_PREFIX)) throw new FormatError("not a PG1: pass");
  const cose = base45Decode(t.slice(PASS_PREFIX.length));
  const sign1 = cborRead(cose);
  if (!equalBytes(cborWrite(sign1), cose)) throw new FormatError("pass not in deterministic CBOR");
  if (sign1.tag !== 18 || !Array.isArray(sign1.value) || sign1.value.length !== 4) {
    throw new FormatError("not a COSE_Sign1");
  }
  const payload = sign1.value[2];
  if (!(payload instanceof Uint8Array)) throw new FormatError("no payload");
  const map = cborRead(payload);
  if (!(map instanceof Map)) throw new FormatError("claims must be a map");
  const extra = map.get(CLAIM.passgate);
  if (!Array.isArray(extra) || extra.length < 2 || !Array.isArray(extra[1])) {
    throw new FormatError("no passgate claim");
  }
  const claims = {
    issuer: map.get(CLAIM.iss), expires: map.get(CLAIM.exp), notBefore: map.get(CLAIM.nbf),
    purpose: extra[0], zones: extra[1], hint: extra.length > 2 ? extra[2] : null,
  };
  if (typeof claims.expires !== "number" || typeof claims.notBefore !== "number") {
    throw new FormatError("no validity times");
  }
  return { cose, claims, point33: map.has(CLAIM.cnf) ? cnfPoint(map.get(CLAIM.cnf)) : null };
}

// cnf = {1: {1: 2, -1: 1, -2: x, -3: y_sign}} (RFC 8747, RFC 9053 section 7.1.1).
function cnfPoint(cnf) {
  const key = cnf instanceof Map && cnf.size === 1 ? cnf.get(1) : null;
  if (!(key instanceof Map) || key.size !== 4 || key.get(1) !== 2 || key.get(-1) !== 1
      || !(key.get(-2) instanceof Uint8Array) || key.get(-2).length !== 32
      || typeof key.get(-3) !== "boolean") {
    throw new FormatError("malformed cnf key");
  }
  return concat(Uint8Array.of(key.get(-3) ? 3 : 2), key.get(-2));
}

// ---- the live code (level 2) -------------------------------------------------------------
export const L2_PROTECTED = Uint8Array.of(0xa1, 0x01, 0x26); // {1: -7}, ES256

// The bytes the holder key signs: Sig_structure ["Signature1", protected, L1, payload].
export function liveToBeSigned(l1, t, n) {
  const payload = concat(Uint8Array.of(0x82), Uint8Array.from(head(0, t)), Uint8Array.from(head(0, n)));
  const tbs = concat(Uint8Array.of(0x84, 0x6a), utf8("Signature1"), bstr(L2_PROTECTED), bstr(l1),
    bstr(payload));
  return { payload, tbs };
}

// PG2: text from the level-1 bytes, the payload and the 64-byte r || s signature.
export function liveText(l1, payload, signature) {
  if (signature.length !== 64) throw new FormatError("signature must be 64 bytes");
  const l2 = concat(Uint8Array.of(0xd2, 0x84), bstr(L2_PROTECTED), Uint8Array.of(0xa0), bstr(payload),
    bstr(signature));
  return LIVE_PREFIX + base45Encode(concat(Uint8Array.of(0x82), bstr(l1), bstr(l2)));
}

// The live code for time t (whole seconds) and counter n, signed by privateKey (a
// non-extractable WebCrypto ECDSA P-256 key).
export async function makeLiveCode(l1, privateKey, t, n) {
  if (!Number.isInteger(t) || t < 0 || t >= 2 ** 40) throw new FormatError("bad time");
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new FormatError("bad counter");
  const { payload, tbs } = liveToBeSigned(l1, t, n);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, tbs));
  return liveText(l1, payload, sig);
}
