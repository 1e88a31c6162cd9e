"""The orchestrator's HTTP(S) server against silent and slow clients (the KM's guard,
``kms.https_server.guard_server``): a TCP client that never sends a ClientHello does not stop
others from being served, and clients that trickle their request (slow-loris) or go silent
after the handshake are cut at the read deadline, over HTTPS and plain HTTP.

The server is the real :class:`orchestrator.server.OrchestratorServer` with certificates of a
network CA; the app behind it is a one-line WSGI app (the server is what is under test), with
a read deadline of 1.5 s to keep the test short.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kms.pki import CertificateAuthority
from orchestrator.server import OrchestratorServer, tls_files

pytestmark = pytest.mark.integration

DEADLINE_S = 1.5


def hello_app(environ, start_response):
    body = json.dumps({"path": environ["PATH_INFO"],
                       "length": len(environ["wsgi.input"].read())}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create_or_load(root)
    server = ca.issue(root / "orchestrator", "server", "localhost", "orchestrator",
                      server=True, client=False, dns_names=["localhost"])
    return server.cert, server.key, ca.paths.cert


@pytest.fixture(params=["https", "http"])
def server(request, pki) -> Iterator[OrchestratorServer]:
    tls = tls_files(*pki) if request.param == "https" else None
    with OrchestratorServer(hello_app, tls=tls, threads=4,
                            read_deadline_s=DEADLINE_S) as running:
        yield running


def _client(pki) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki[2])
    return session


def _timed_get(session: requests.Session, url: str) -> float:
    started = time.monotonic()
    reply = session.get(url + "/ping", timeout=5, headers={"Connection": "close"})
    assert reply.status_code == 200 and reply.json()["path"] == "/ping"
    return time.monotonic() - started


def _cut_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the server closes ``sock`` (EOF or reset), None if still open."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - started


def test_silent_tcp_clients_do_not_stall_others(server, pki) -> None:
    """More silent connections than worker threads; every normal request is still served at
    once, and the silent connections are closed at the read deadline."""
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]
    try:
        time.sleep(0.2)
        session = _client(pki)
        latencies = [_timed_get(session, server.base_url) for _ in range(5)]
        assert max(latencies) < 1.0, latencies
        cut = [_cut_after(s, DEADLINE_S + 5) for s in silent]
        assert all(c is not None and c < DEADLINE_S + 2 for c in cut), cut
    finally:
        for s in silent:
            s.close()


def _slow_loris(port: int, context: ssl.SSLContext | None, result: dict, key: str) -> None:
    started = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port))
    sock = raw if context is None else context.wrap_socket(raw, server_hostname="localhost")
    head = b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n" + b"X-Pad: a\r\n" * 100
    try:
        for byte in head:
            sock.sendall(bytes([byte]))
            time.sleep(0.05)
            if time.monotonic() - started > DEADLINE_S + 8:
                result[key] = None   # never cut
                return
        result[key] = _cut_after(sock, DEADLINE_S + 5)
    except OSError:
        result[key] = time.monotonic() - started
    finally:
        sock.close()


def test_slow_loris_and_silent_tls_clients_are_dropped(server, pki) -> None:
    context = None
    if server.scheme == "https":
        context = ssl.create_default_context(cafile=str(pki[2]))
    result: dict[str, float | None] = {}
    threads = [threading.Thread(target=_slow_loris, args=(server.port, context, result, f"l{i}"))
               for i in range(6)]   # more than the 4 worker threads
    for t in threads:
        t.start()
    silent_tls = None
    if context is not None:
        silent_tls = context.wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                         server_hostname="localhost")
    time.sleep(0.3)
    try:
        session = _client(pki)
        # while the trickling clients hold workers, normal requests wait at most a deadline
        assert _timed_get(session, server.base_url) < DEADLINE_S + 2
        if silent_tls is not None:
            cut = _cut_after(silent_tls, DEADLINE_S + 5)
            assert cut is not None and cut < DEADLINE_S + 3, cut
    finally:
        for t in threads:
            t.join(DEADLINE_S + 15)
        if silent_tls is not None:
            silent_tls.close()
    # 4 are read by the 4 workers and cut at the deadline; the 2 others wait in cheroot's
    # queue for a worker, then get their own deadline: at most two deadlines (+ load margin)
    assert len(result) == 6 and all(v is not None and v < 2 * DEADLINE_S + 3
                                     for v in result.values()), result
    assert sorted(result.values())[3] < DEADLINE_S + 3, result
    assert server.read_deadlines.cut_count >= 1   # cut by the watchdog, not by themselves
    assert _timed_get(_client(pki), server.base_url) < 1.0


def _raw_exchange(server: OrchestratorServer, pki, payload: bytes) -> tuple[bytes, bytes]:
    """Send ``payload`` on a fresh connection; the answer's head and body (read to EOF)."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock = raw
    if server.scheme == "https":
        context = ssl.create_default_context(cafile=str(pki[2]))
        sock = context.wrap_socket(raw, server_hostname="localhost")
    reply = b""
    with sock:
        sock.sendall(payload)
        try:
            while chunk := sock.recv(4096):
                reply += chunk
        except OSError:
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body


def test_oversized_and_unreadable_bodies_are_refused(server, pki) -> None:
    """A body over 1 MiB is refused by its Content-Length (413, before it is sent); a chunk
    size past ssize_t is a 400 problem document from the guard (not a 500); the server goes
    on serving."""
    head, _ = _raw_exchange(server, pki, b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    head, body = _raw_exchange(
        server, pki, b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n\r\n"
        b"ffffffffffffffffff\r\n{}\r\n0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"Content-Type: application/problem+json" in head
    assert json.loads(body)["status"] == 400, body
    assert _timed_get(_client(pki), server.base_url) < 1.0
