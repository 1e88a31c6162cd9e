"""cheroot + mTLS: client identity reaches the app; no certificate, no connection."""

import ssl

import pytest
import requests

from kms.https_server import HttpsServer, TlsFiles, peer_identity
from kms.pki import issue_network_pki

pytestmark = pytest.mark.integration


def whoami(environ, start_response):
    ident = peer_identity(environ)
    body = f"{ident.common_name}/{ident.unit}/{environ['SSL_PROTOCOL']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return issue_network_pki(tmp_path_factory.mktemp("pki"), ["A"], {"sae-1": "A"})


def test_client_certificate_identity_reaches_the_app(pki):
    km = pki["kms"]["A"]
    files = TlsFiles(km["cert"], km["key"], pki["ca_cert"])
    sae = pki["saes"]["sae-1"]
    with HttpsServer(whoami, files) as server:
        r = requests.get(server.base_url + "/", cert=(sae["cert"], sae["key"]),
                         verify=pki["ca_cert"], timeout=5)
        assert r.text.startswith("sae-1/sae/TLSv1.")
        r = requests.get(f"https://localhost:{server.port}/", cert=(km["cert"], km["key"]),
                         verify=pki["ca_cert"], timeout=5)
        assert r.text.startswith("A/km/")
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(server.base_url + "/", verify=pki["ca_cert"], timeout=5).raise_for_status()


def test_tls_1_1_refused(pki):
    km = pki["kms"]["A"]
    files = TlsFiles(km["cert"], km["key"], pki["ca_cert"])
    with HttpsServer(whoami, files) as server:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(pki["ca_cert"])
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        import socket
        with (socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
              pytest.raises(ssl.SSLError)):
            ctx.wrap_socket(raw, server_hostname="localhost").do_handshake()


def test_more_than_ten_clients_keep_their_connections(pki):
    """cheroot's default kept 10 idle keep-alive connections and answered the eleventh
    connected client with ``Connection: close``: one TLS handshake per request for a KM with
    more than ten SAEs (reliability item 6). 24 clients, two requests each, one connection
    each."""
    import http.client

    km = pki["kms"]["A"]
    files = TlsFiles(km["cert"], km["key"], pki["ca_cert"])
    sae = pki["saes"]["sae-1"]
    context = ssl.create_default_context(cafile=str(pki["ca_cert"]))
    context.load_cert_chain(sae["cert"], sae["key"])
    with HttpsServer(whoami, files) as server:
        conns = [http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                             timeout=5) for _ in range(24)]
        try:
            for _ in range(2):
                for conn in conns:
                    conn.request("GET", "/")
                    answer = conn.getresponse()
                    assert answer.read().startswith(b"sae-1/sae/")
                    assert not answer.will_close, answer.getheaders()
            assert all(conn.sock is not None for conn in conns)
        finally:
            for conn in conns:
                conn.close()


def test_a_request_refused_for_size_gets_its_answer_and_connection_close(pki):
    """A request line far above the header limit is answered 414 with ``Connection: close``
    (cheroot left the header out: the client then sent its next request into the close),
    and the server reads what the client is still sending before closing, so the client
    gets the answer instead of a reset (about one in ten 2-MB request lines ended in
    ``SSLEOFError`` before: reliability item 2's one transport error)."""
    import http.client

    from kms.https_server import MAX_HEADER_BYTES

    km = pki["kms"]["A"]
    files = TlsFiles(km["cert"], km["key"], pki["ca_cert"])
    sae = pki["saes"]["sae-1"]
    context = ssl.create_default_context(cafile=str(pki["ca_cert"]))
    context.load_cert_chain(sae["cert"], sae["key"])
    query = "&".join(["key_ID=d4161630-05d8-1a9d-8b1c-0cc5734fa81f"] * 50_000)
    assert len(query) > 20 * MAX_HEADER_BYTES
    with HttpsServer(whoami, files) as server:
        session = requests.Session()
        session.trust_env = False
        session.cert, session.verify = (sae["cert"], sae["key"]), pki["ca_cert"]
        for _ in range(20):
            answer = session.get(f"{server.base_url}/keys?{query}", timeout=10)
            assert answer.status_code == 414
            assert answer.headers.get("Connection", "").lower() == "close"
            assert session.get(server.base_url + "/", timeout=5).text.startswith("sae-1/")
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=5)
        try:
            conn.request("GET", "/x?" + query[:2 * MAX_HEADER_BYTES])
            answer = conn.getresponse()
            assert answer.status == 414 and answer.will_close
        finally:
            conn.close()
