// The holder's key and pass, kept in this browser's IndexedDB (database "passgate-holder",
// one object store "kv"). The private key is a WebCrypto CryptoKey made non-extractable:
// IndexedDB stores the object itself (structured clone), so its bytes never reach
// JavaScript, and exportKey refuses it. Nothing here goes over the network.

const DB = "passgate-holder";
const STORE = "kv";

export function supported() {
  return Boolean(globalThis.crypto && crypto.subtle && globalThis.indexedDB && isSecureContext);
}

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export function get(name) {
  return run("readonly", (s) => s.get(name));
}

export function put(name, value) {
  return run("readwrite", (s) => s.put(value, name));
}

export function remove(name) {
  return run("readwrite", (s) => s.delete(name));
}

// A new holder key: ECDSA P-256, the private half non-extractable, usable only to sign.
export async function createKey() {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const record = { privateKey: pair.privateKey, publicRaw: raw, created: Math.floor(Date.now() / 1000) };
  await put("key", record);
  return record;
}

// The next counter of the live code: kept, so it keeps rising across reloads.
export async function nextCounter() {
  const n = ((await get("counter")) || 0) + 1;
  const next = n >= 2 ** 32 ? 1 : n;
  await put("counter", next);
  return next;
}
