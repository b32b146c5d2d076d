// The holder app's service worker: after the first load every file of the app comes from
// this cache, so the app opens and shows the live code with no network at all. A file is
// served from the cache at once and, when the network is there, refreshed behind it for the
// next start (stale-while-revalidate): an updated app arrives on the second start after it
// was published. Only the app's own files (FILES; tests/test_holder_app.py checks the list
// is complete) are cached; nothing else is fetched or sent.

const CACHE = "passgate-holder-1";
const FILES = [
  "./", "app.js", "codec.js", "i18n.js", "store.js", "messages.js", "style.css",
  "manifest.webmanifest", "icons/icon.svg", "icons/icon-192.png", "icons/icon-512.png",
  "vendor/qrcode.mjs",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  const path = url.pathname.endsWith("/index.html") ? url.pathname.slice(0, -10) : url.pathname;
  const key = new Request(url.origin + path); // one entry per file, whatever the query
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const hit = await cache.match(key);
    const fresh = fetch(event.request).then((resp) => {
      if (resp.ok) cache.put(key, resp.clone());
      return resp;
    });
    if (hit) {
      fresh.catch(() => null); // offline: the cached copy is the answer
      return hit;
    }
    return fresh;
  }));
});
