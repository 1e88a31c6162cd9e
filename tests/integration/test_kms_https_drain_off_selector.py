"""A connection that cheroot's selector thread closes (an idle keep-alive connection it
expires) with bytes still coming from the client is drained (RFC 9112 §9.6) in the
background: the selector thread is not held for the drain's up to 1 s."""

import socket
import threading
import time

import pytest

from kms import https_server
from kms.https_server import HttpsServer, TlsFiles, client_tls_context, server_tls_context
from kms.pki import issue_network_pki

pytestmark = pytest.mark.integration


def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return issue_network_pki(tmp_path_factory.mktemp("pki"), ["A"], {"sae-1": "A"})


def tls_pair(pki):
    """A TLS connection over loopback: (server side, client side), handshake done."""
    km, sae = pki["kms"]["A"], pki["saes"]["sae-1"]
    server_ctx = server_tls_context(TlsFiles(km["cert"], km["key"], pki["ca_cert"]))
    client_ctx = client_tls_context(pki["ca_cert"], sae["cert"], sae["key"])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        raw = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
    client: list = []
    t = threading.Thread(target=lambda: client.append(
        client_ctx.wrap_socket(raw, server_hostname="localhost")))
    t.start()
    server = server_ctx.wrap_socket(accepted, server_side=True)
    t.join(5)
    server.settimeout(5)
    return server, client[0]


def test_a_selector_close_with_a_client_still_sending_does_not_wait_for_the_drain(pki):
    km = pki["kms"]["A"]
    files = TlsFiles(km["cert"], km["key"], pki["ca_cert"])
    unstarted = HttpsServer(app, files)
    server_sock, client_sock = tls_pair(pki)
    conn = https_server._GuardedConnection(unstarted._server, server_sock)
    conn._handshake_done = True
    client_sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n")     # unread when it expires
    sent, errors, stop = [0], [], threading.Event()

    def trickle():            # a client still sending: a drain lasts until LINGER_S
        try:
            while not stop.is_set():
                client_sock.send(b"X-Trickle: 1\r\n")
                sent[0] += 1
                time.sleep(0.02)
        except OSError as exc:
            errors.append(exc)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    time.sleep(0.05)
    with https_server.selector_thread():      # as cheroot's selector thread does, expiring it
        started = time.monotonic()
        conn.close()
        took = time.monotonic() - started
    assert took < 0.25, f"the selector was held {took:.3f} s"   # a drain: up to 1 s
    time.sleep(0.3)
    stop.set()
    sender.join(2)
    assert errors == [] and sent[0] >= 5      # the client's input is still read (no reset)
    client_sock.settimeout(3)
    assert client_sock.recv(100) == b""        # and the drain shut the sending side (FIN)
    deadline = time.monotonic() + 3            # then closed, by the background drain
    while server_sock.fileno() != -1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server_sock.fileno() == -1
    client_sock.close()


def test_a_worker_thread_close_still_drains_before_it_returns(pki):
    """Elsewhere (a worker thread closing after a 413/414) the drain runs inline, as before."""
    km = pki["kms"]["A"]
    unstarted = HttpsServer(app, TlsFiles(km["cert"], km["key"], pki["ca_cert"]))
    server_sock, client_sock = tls_pair(pki)
    conn = https_server._GuardedConnection(unstarted._server, server_sock)
    conn._handshake_done = True
    client_sock.sendall(b"x" * 1000)
    time.sleep(0.05)
    conn.close()
    assert server_sock.fileno() == -1          # closed on return, after the drain
    client_sock.settimeout(3)
    assert client_sock.recv(100) == b""
    client_sock.close()


def test_the_server_runs_its_selector_as_a_selector_thread(pki):
    km = pki["kms"]["A"]
    with HttpsServer(app, TlsFiles(km["cert"], km["key"], pki["ca_cert"])) as server:
        deadline = time.monotonic() + 2
        while server._thread.ident not in https_server.SELECTOR_THREADS and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        assert server._thread.ident in https_server.SELECTOR_THREADS
    assert server._thread.ident not in https_server.SELECTOR_THREADS
