"""HTTP transport for the sync agent: the Python standard library, one connection per request.

Why no third-party HTTP client: the agent sends a few hundred requests per backlog, each a
batch of rows, so connection reuse buys nothing worth a dependency on the Pi; ``http.client``
gives timeouts, TLS with the system CA store, and plain ``OSError`` subclasses for every
network failure. A fresh connection per request also means a reset or half-read answer can
never poison the next exchange.

Any object with ``send(Request) -> Response`` is a transport: the tests wrap the real one in
a fault-injecting transport, between the agent and a real collector on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Protocol

from passgate.errors import ConfigError, LinkError, ReplyTooLarge

# A reply larger than this is not from our collector (bundles have their own, larger limit,
# passed per request): stop reading instead of filling the SD card or the memory.
DEFAULT_MAX_REPLY = 1 << 20


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    max_reply: int = DEFAULT_MAX_REPLY


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # keys lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Transport(Protocol):
    def send(self, request: Request) -> Response:
        """Send one request. Network failures (refused, reset, timeout, TLS) raise ``OSError``;
        a URL that cannot be used raises ``ValueError``."""
        ...


class HttpTransport:
    """``http.client`` transport. ``ssl_context`` defaults to the system's CA store.

    Proxies from the environment are deliberately ignored: a checkpoint talks to its own
    collector, and a stray ``http_proxy`` should not silently reroute signed journals.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context

    def send(self, request: Request) -> Response:
        # A URL that can never work is a ValueError (the client's "refused"), never an
        # OSError (which would be retried as a network failure for ever).
        url = urllib.parse.urlsplit(request.url)
        port = url.port  # ValueError when the port is not a number
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"collector URL must be http(s)://HOST[:PORT], got {request.url!r}")
        try:
            if url.scheme == "https":
                ctx = self._ssl or ssl.create_default_context()
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    url.hostname, port, timeout=request.timeout, context=ctx
                )
            else:
                conn = http.client.HTTPConnection(url.hostname, port, timeout=request.timeout)
        except http.client.InvalidURL as exc:
            raise ConfigError(f"collector URL {request.url!r}: {exc}") from None
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        try:
            headers = {"Content-Length": str(len(request.body)), **request.headers}
            conn.request(request.method, path, body=request.body or None, headers=headers)
            resp = conn.getresponse()
            declared = resp.getheader("Content-Length")
            if declared is not None and not (declared.isascii() and declared.isdigit()):
                declared = None  # "²" passes isdigit() and int() refuses it: not a length
            if declared is not None and int(declared) > request.max_reply:
                raise ReplyTooLarge(f"reply declares {declared} bytes (limit {request.max_reply})")
            body = resp.read(request.max_reply + 1)
            if len(body) > request.max_reply:
                raise ReplyTooLarge(f"reply longer than {request.max_reply} bytes")
            # read(n) returns short data quietly when the peer closes early: check the length.
            if declared is not None and len(body) != int(declared):
                raise LinkError(f"truncated reply: {len(body)} of {declared} bytes")
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, body, headers_out)
        except http.client.HTTPException as exc:
            # Malformed status lines, truncated bodies: the network's fault, so retryable.
            raise LinkError(f"bad HTTP exchange: {exc.__class__.__name__}") from exc
        finally:
            conn.close()
