"""The standard-library transport against real sockets on 127.0.0.1: every network failure
the sync agent retries must surface as an ``OSError`` (refused, reset, timeout, truncation)."""

from __future__ import annotations

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from passgate.sync.transport import HttpTransport, ReplyTooLarge, Request


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = b"got:" + body + b":" + self.headers.get("X-Test", "").encode()
        if self.path == "/big":
            reply = b"x" * 5000
        self.send_response(201)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("X-Reply", "yes")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def echo_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _read_request(conn) -> bytes:
    """The whole request (head and Content-Length body). A server that closes with part of
    it unread makes the kernel answer with a reset instead of a close, which the client may
    see before the reply: under load the body often comes in a second segment."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _raw_server(behaviour):
    """A one-shot TCP server on 127.0.0.1 that does ``behaviour(conn)`` to the first client."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def run():
        conn, _ = s.accept()
        try:
            behaviour(conn)
        finally:
            conn.close()
            s.close()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_round_trip(echo_server):
    r = HttpTransport().send(Request("POST", echo_server + "/x", b"abc", {"X-Test": "h"}))
    assert (r.status, r.body, r.header("X-Reply")) == (201, b"got:abc:h", "yes")


def test_reply_over_limit_is_refused(echo_server):
    with pytest.raises(ReplyTooLarge):
        HttpTransport().send(Request("POST", echo_server + "/big", b"", max_reply=1000))


def test_connection_refused_is_oserror():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(ConnectionRefusedError):
        HttpTransport().send(Request("POST", f"http://127.0.0.1:{port}/", b"x"))


def test_connection_reset_is_oserror():
    def reset(conn):
        _read_request(conn)
        # SO_LINGER 0 makes close() send RST instead of FIN: a real reset, as from a middlebox.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with pytest.raises(OSError):
        HttpTransport().send(Request("POST", _raw_server(reset), b"x"))


def test_timeout_is_oserror():
    done = threading.Event()

    def silent(conn):
        _read_request(conn)
        done.wait(5)

    try:
        with pytest.raises(TimeoutError):
            HttpTransport().send(Request("POST", _raw_server(silent), b"x", timeout=0.2))
    finally:
        done.set()


def test_truncated_reply_is_connection_error():
    def truncated(conn):
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a bit")

    with pytest.raises(ConnectionError, match="truncated"):
        HttpTransport().send(Request("POST", _raw_server(truncated), b"x"))


def test_garbage_status_line_is_connection_error():
    def garbage(conn):
        _read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

    with pytest.raises(ConnectionError):
        HttpTransport().send(Request("POST", _raw_server(garbage), b"x"))


def test_proxy_environment_is_ignored(echo_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # would be refused if used
    assert HttpTransport().send(Request("POST", echo_server + "/", b"a")).status == 201


def test_other_schemes_are_refused():
    with pytest.raises(ValueError, match="http"):
        HttpTransport().send(Request("POST", "ftp://example.org/", b""))


def test_an_odd_content_length_is_no_length_not_a_crash():
    """"²" passes str.isdigit() and int() refuses it: a proxy's odd header must leave the
    transport as an answer, not as a ValueError (which the client reads as a bad URL)."""
    def odd(conn):
        _read_request(conn)
        conn.sendall("HTTP/1.1 502 Bad Gateway\r\nContent-Length: \u00b2\r\n"
                     "Connection: close\r\n\r\nproxy".encode("latin-1"))

    r = HttpTransport().send(Request("POST", _raw_server(odd), b"x"))
    assert (r.status, r.body) == (502, b"proxy")
