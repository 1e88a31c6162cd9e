"""The TLS environ of a guarded server's connection: the client's identity, and no C memory
left behind per connection (CPython 3.11's ``SSLSocket.session`` getter leaks the session it
returns, with the client's certificate: gh-116810). The handshake runs over memory BIOs."""

import ctypes
import ssl
from pathlib import Path

import pytest
from cheroot import wsgi

from kms.https_server import TlsFiles, client_tls_context, guard_server, server_tls_context
from kms.pki import issue_network_pki


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_in_use() -> int | None:
    """Bytes glibc's malloc has handed out and not had back, or None without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    pki = issue_network_pki(tmp_path_factory.mktemp("pki"), ["A"], {"sae-1": "A"})
    km, sae = pki["kms"]["A"], pki["saes"]["sae-1"]
    files = TlsFiles(Path(km["cert"]), Path(km["key"]), Path(pki["ca_cert"]))
    server = wsgi.Server(("127.0.0.1", 0), lambda environ, start_response: [])
    guard_server(server, name="environ-test", tls=(files, server_tls_context(files)))
    client = client_tls_context(Path(pki["ca_cert"]), Path(sae["cert"]), Path(sae["key"]))
    client.check_hostname = False
    return server.ssl_adapter, client


def _handshake(adapter, client: ssl.SSLContext) -> ssl.SSLObject:
    """The server side of a finished mutual-TLS handshake (TLS 1.3 tickets sent)."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = adapter.context.wrap_bio(s_in, s_out, server_side=True)
    client_side = client.wrap_bio(c_in, c_out, server_side=False)
    for _ in range(10):
        for end in (client_side, server_side):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    client_side.write(b"x")
    s_in.write(c_out.read())
    assert server_side.read(1) == b"x"
    return server_side


def test_environ_names_the_verified_client_without_the_session_id(tls):
    adapter, client = tls
    environ = adapter.get_environ(_handshake(adapter, client))
    assert environ["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert environ["SSL_CLIENT_S_DN_CN"] == "sae-1"
    assert environ["SSL_CLIENT_S_DN_OU"] == "sae"
    assert environ["SSL_PROTOCOL"].startswith("TLSv1.")
    assert "SSL_SESSION_ID" not in environ


def test_environ_leaves_no_c_memory_behind(tls):
    """400 environs of one connection: with ``sock.session`` read (cheroot's own
    ``get_environ``) malloc's memory in use grew by ≈ 5.9 KB each, 2.3 MB in all."""
    adapter, client = tls
    conn = _handshake(adapter, client)
    for _ in range(20):   # warm-up: caches, first allocations
        adapter.get_environ(conn)
    before = _malloc_in_use()
    if before is None:
        pytest.skip("glibc's mallinfo2 is needed to read malloc's memory in use")
    for _ in range(400):
        adapter.get_environ(conn)
    growth = _malloc_in_use() - before
    assert growth < 400 * 1024, f"{growth} bytes left in use after 400 environs"
