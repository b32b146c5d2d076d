"""Serve the app with waitress, closing refused connections so the client reads the answer.

Rules kept here (tests/test_collector_limits.py, real sockets):

- A body over the limit gets ``413``, never a TCP reset. Waitress answers 413 as soon as it
  has read the headers and closes at once; the kernel then resets the connection, because
  the client is still sending, and the client sees the reset, not the 413. So a connection
  waitress closes with unread input *lingers* (as nginx's ``lingering_close``): the write
  side is shut (the answer and a FIN go out), the rest of the input is read and discarded
  for at most ``LINGER_S`` seconds and ``LINGER_BYTES`` bytes, then the socket closes. It
  lingers whenever the peer has not closed its side, with or without bytes unread at that
  moment, and stops after ``LINGER_IDLE_S`` of silence (an idle peer costs 5 s, no more).
- Lingering runs in a small thread per connection, at most ``MAX_LINGERING`` at once;
  beyond that a connection closes at once (a flood of huge bodies cannot pin threads).
- waitress's own refusals (413 for a body over its limit, 400 for a broken chunk) are
  answered by the application, told by ``REFUSED`` in an environment without the body: under
  ``/v1/`` the protocol's CBOR error map and the headers every ``/v1/`` answer carries (its
  ``Passgate-Challenge``), as for a body Flask refuses (docs/sync-protocol.md section 1);
  elsewhere the staff side's page in the staff member's language (``errorpage.py``). A
  request without a path to answer (a broken request line) keeps waitress's plain text.
- The few POST paths that take a larger body (``web.LARGE_BODIES``: the console's photo of a
  pass) get waitress's limit raised to theirs, and only for a request whose ``Cookie`` the
  ``admits`` check passes (a signed staff session: ``auth.names_account``); every other
  request keeps ``max_body``'s, so a client that never signed in cannot make the collector
  read and spool a 12 MiB body.
"""

from __future__ import annotations

import copy
import io
import logging
import socket
import threading
import time
from collections.abc import Callable

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask, WSGITask

log = logging.getLogger(__name__)

LINGER_S = 30.0
LINGER_BYTES = 256 << 20
LINGER_IDLE_S = 5.0  # lingering ends after this long without a byte from the peer
MAX_LINGERING = 16
_lingering = threading.BoundedSemaphore(MAX_LINGERING)


def _may_send_more(sock: socket.socket) -> bool:
    """True unless the peer has closed its side: it sent bytes nobody read, or its side is
    still open and more may be on the way (closing now would reset the connection). The
    second case matters as much: a client still sending a refused body may not have the
    next segment in our buffer at the moment waitress closes (a client slowed by load: the
    413 test failed so in CI), and its next segment would then meet a closed socket."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))  # b"": FIN, done
    except (BlockingIOError, InterruptedError):
        return True  # open, nothing unread yet; lingering ends after LINGER_IDLE_S of silence
    except OSError:
        return False  # already reset or closed by the peer: nothing to save


def _linger(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline, read = time.monotonic() + LINGER_S, 0
        while read < LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(min(left, LINGER_IDLE_S))
            chunk = sock.recv(65536)
            if not chunk:
                break
            read += len(chunk)
    except OSError as exc:  # the peer gave up first: that is the end of lingering
        log.debug("lingering close ended: %s", type(exc).__name__)
    finally:
        sock.close()
        _lingering.release()


# The environment key that tells the application waitress refused the request (its status).
REFUSED = "passgate.refused"
BODY_SLACK = 1024  # waitress's limit above the collector's (make_server)


class _AppRefusal(WSGITask):
    """A request waitress refused, answered by the application without its body."""

    def get_environment(self) -> dict:
        env = super().get_environment()
        env.update({"CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(),
                    REFUSED: self.request.error.code})
        return env

    def execute(self) -> None:
        self.set_close_on_finish()  # the body was not read: the connection ends (lingering)
        super().execute()


def _refusal_task(channel, request):
    path = getattr(request, "path", None) or ""
    if request.error.code in (400, 413) and path.startswith("/"):
        return _AppRefusal(channel, request)
    return ErrorTask(channel, request)


class LingeringChannel(HTTPChannel):
    """waitress's channel with a lingering close, and its refusals under ``/v1/`` answered
    by the application (see the module rules)."""

    error_task_class = staticmethod(_refusal_task)

    def handle_close(self) -> None:
        sock = self.socket
        keep = None
        if sock is not None and _may_send_more(sock) and _lingering.acquire(blocking=False):
            keep = sock.dup()  # survives waitress closing its own descriptor
        super().handle_close()
        if keep is not None:
            threading.Thread(target=_linger, args=(keep,), name="linger", daemon=True).start()


class _PathLimitParser(HTTPRequestParser):
    """waitress's request parser with a larger body limit on a few POST paths (``large``:
    path -> waitress's adjustments with that limit) for requests whose ``Cookie`` header
    ``admits`` passes; it reads its limit after the headers."""

    large: dict[str, object] = {}
    admits: Callable[[str | None], bool] = staticmethod(lambda _cookie: False)

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        adj = self.large.get(self.path)
        if adj is not None and self.command == "POST" and self.admits(
                self.headers.get("COOKIE")):
            self.adj = adj


def make_server(app, *, host: str, port: int, threads: int, max_body: int,
                large_bodies: dict[str, int] | None = None,
                admits: Callable[[str | None], bool] | None = None, **kw):
    """A waitress server for ``app`` whose connections linger (call ``.run()``, ``.close()``).

    ``large_bodies``: POST path -> its larger limit, for requests whose ``Cookie`` header
    ``admits`` passes (None: none does; the collector's is ``auth.names_account``).

    ``max_body`` is the collector's limit; waitress's own is a little above it, so a body
    just over the limit reaches Flask and gets the protocol's CBOR 413, while a far larger
    one is refused by waitress from its ``Content-Length`` without being buffered.
    """
    server = create_server(app, host=host, port=port, threads=threads,
                           max_request_body_size=max_body + BODY_SLACK, **kw)
    large = {}
    for path, limit in (large_bodies or {}).items():
        adj = copy.copy(server.adj)
        adj.max_request_body_size = max(limit, max_body) + BODY_SLACK
        large[path] = adj
    parser = type("PathLimitParser", (_PathLimitParser,), {
        "large": large, "admits": staticmethod(admits or (lambda _cookie: False))})
    server.channel_class = type("Channel", (LingeringChannel,), {"parser_class": parser})
    return server
