"""Item 5: the authorization matrix of the KM's APIs, against a real KM pair (mTLS).

* every cross-SAE fetch is refused and carries no key material: each SAE of the network tries
  to take each delivered key (014 dec_keys at both KMs, naming every possible master; 004
  GET_KEY on the stream) and only the SAE the key was issued for gets it;
* a second fetch of a key is refused (014 and 004);
* no client certificate, a certificate from an untrusted CA, an expired certificate, a KM
  certificate on the SAE APIs, an SAE certificate on the relay API, and TLS 1.0/1.1 are
  refused;
* NETCONF with wrong credentials: ``test_reliability_netconf_auth.py`` (item 1).
Figures: bench/reliability.json, item authorization.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
import ssl
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kms.local_network import LocalKmNetwork
from kms.pki import CertificateAuthority

from . import reliability_report

pytestmark = pytest.mark.integration

# two SAEs per node: every fetch by the three that are not the key's slave must fail
SAES = {"sae-a": "A", "sae-a2": "A", "sae-b": "B", "sae-b2": "B"}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with LocalKmNetwork(tmp_path_factory.mktemp("authz"), ["A", "B"], [("A", "B")], SAES) as net:
        net.feed("A", "B", blocks=16, size=8192)
        yield net


def session(net, sae: str | None = None, cert: tuple[str, str] | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = net.ca
    if sae:
        s.cert = net.sae_cert(sae)
    elif cert:
        s.cert = cert
    return s


def carries_key_material(response: requests.Response, secrets: list[bytes]) -> bool:
    """True if any of ``secrets`` appears in the answer (raw, base64 or hex)."""
    body = response.content
    for secret in secrets:
        for form in (secret, base64.b64encode(secret), secret.hex().encode()):
            if form in body:
                return True
    try:
        data = response.json()
    except ValueError:
        return False
    return bool(isinstance(data, dict) and (data.get("keys") or data.get("key_buffer")))


def test_authorization_matrix(net, tmp_path):
    figures: dict[str, int] = {"cross_sae_attempts": 0, "cross_sae_refused": 0,
                               "cross_sae_with_key_material": 0}
    url = {n: km.base_url for n, km in net.kms.items()}
    # keys for each ordered pair of SAEs on different nodes
    issued: list[tuple[str, str, str, bytes]] = []   # (master, slave, key_ID, key)
    for master, slave in (("sae-a", "sae-b"), ("sae-b2", "sae-a2"), ("sae-a2", "sae-b2")):
        r = session(net, master).post(f"{url[SAES[master]]}/api/v1/keys/{slave}/enc_keys",
                                      json={"number": 2}, timeout=10)
        assert r.status_code == 200, r.text
        for k in r.json()["keys"]:
            issued.append((master, slave, k["key_ID"], base64.b64decode(k["key"])))
    secrets = [k for *_, k in issued]
    # every other SAE, at both KMs, naming every master, GET and POST forms
    for master, slave, key_id, _ in issued:
        for thief in SAES:
            if thief == slave:
                continue
            for node in ("A", "B"):
                for named_master in SAES:
                    s = session(net, thief)
                    for r in (s.get(f"{url[node]}/api/v1/keys/{named_master}/dec_keys",
                                    params={"key_ID": key_id}, timeout=10),
                              s.post(f"{url[node]}/api/v1/keys/{named_master}/dec_keys",
                                     json={"key_IDs": [{"key_ID": key_id}]}, timeout=10)):
                        figures["cross_sae_attempts"] += 1
                        if r.status_code in (400, 401):
                            figures["cross_sae_refused"] += 1
                        if carries_key_material(r, secrets):
                            figures["cross_sae_with_key_material"] += 1
    # the rightful slaves get their keys, exactly once
    second_fetch_refused = 0
    for master, slave, key_id, key in issued:
        s = session(net, slave)
        r = s.post(f"{url[SAES[slave]]}/api/v1/keys/{master}/dec_keys",
                   json={"key_IDs": [{"key_ID": key_id}]}, timeout=10)
        assert r.status_code == 200 and base64.b64decode(r.json()["keys"][0]["key"]) == key
        again = s.post(f"{url[SAES[slave]]}/api/v1/keys/{master}/dec_keys",
                       json={"key_IDs": [{"key_ID": key_id}]}, timeout=10)
        if again.status_code == 400 and not carries_key_material(again, secrets):
            second_fetch_refused += 1
    figures["second_fetch_attempts"] = len(issued)
    figures["second_fetch_refused"] = second_fetch_refused
    # an SAE asking keys at a KM that does not serve it
    r = session(net, "sae-b").post(f"{url['A']}/api/v1/keys/sae-a/enc_keys", json={}, timeout=10)
    figures["enc_keys_at_foreign_km_status"] = r.status_code
    reliability_report.record("authorization", "matrix_014", figures)
    assert figures["cross_sae_attempts"] == 6 * 3 * 2 * 4 * 2
    assert figures["cross_sae_refused"] == figures["cross_sae_attempts"], figures
    assert figures["cross_sae_with_key_material"] == 0, figures
    assert second_fetch_refused == len(issued)
    assert r.status_code == 401


def call004(net, sae, node, op, body):
    return session(net, sae).post(f"{net.kms[node].base_url}/api/v1/etsi004/{op}", json=body,
                                  timeout=10)


def test_authorization_004(net):
    qos = {"key_chunk_size": 32, "timeout": 2000, "ttl": 60}
    r = call004(net, "sae-a", "A", "open_connect",
                {"source": "sae-a", "destination": "sae-b", "QoS": qos, "Key_stream_ID": None})
    ksid = r.json()["Key_stream_ID"]
    r = call004(net, "sae-b", "B", "open_connect",
                {"source": "sae-b", "destination": "sae-a", "QoS": qos, "Key_stream_ID": ksid})
    assert r.json()["status"] == 0, r.text
    first = call004(net, "sae-a", "A", "get_key", {"Key_stream_ID": ksid, "index": 0}).json()
    assert first["status"] == 0
    secret = base64.b64decode(first["key_buffer"])
    figures = {"attempts": 0, "refused": 0, "with_key_material": 0}
    for thief in ("sae-a2", "sae-b2"):
        for node in ("A", "B"):
            for index in (0, 1, None):
                r = call004(net, thief, node, "get_key", {"Key_stream_ID": ksid, "index": index})
                figures["attempts"] += 1
                if r.status_code == 200 and r.json()["status"] == 4:   # no QKD connection
                    figures["refused"] += 1
                if carries_key_material(r, [secret]):
                    figures["with_key_material"] += 1
        # joining or closing someone else's stream
        r = call004(net, thief, "A", "open_connect",
                    {"source": thief, "destination": "sae-b", "QoS": qos, "Key_stream_ID": ksid})
        figures["attempts"] += 1
        figures["refused"] += r.json()["status"] == 5
        r = call004(net, thief, "B", "close", {"Key_stream_ID": ksid})
        figures["attempts"] += 1
        figures["refused"] += r.json()["status"] == 4
    # source spoofing: the source must be the caller
    r = call004(net, "sae-a2", "A", "open_connect",
                {"source": "sae-a", "destination": "sae-b", "QoS": qos, "Key_stream_ID": None})
    figures["spoofed_source_status"] = r.status_code
    # the rightful peer gets index 0 once; a second GET_KEY of index 0 is refused
    peer = call004(net, "sae-b", "B", "get_key", {"Key_stream_ID": ksid, "index": 0}).json()
    assert peer["status"] == 0 and base64.b64decode(peer["key_buffer"]) == secret
    again = call004(net, "sae-b", "B", "get_key", {"Key_stream_ID": ksid, "index": 0})
    figures["second_get_key_status"] = again.json()["status"]
    figures["second_get_key_with_key_material"] = carries_key_material(again, [secret])
    reliability_report.record("authorization", "matrix_004", figures)
    assert figures["refused"] == figures["attempts"] == 16, figures
    assert figures["with_key_material"] == 0
    assert figures["spoofed_source_status"] == 401
    assert figures["second_get_key_status"] == 2 and not figures["second_get_key_with_key_material"]


# -- TLS: certificates and protocol versions ----------------------------------------------------

def _foreign_ca(directory: Path) -> CertificateAuthority:
    directory.mkdir(parents=True, exist_ok=True)
    return CertificateAuthority.create_or_load(directory, name="untrusted CA")


def _expired_cert(net, directory: Path) -> tuple[str, str]:
    """An SAE certificate for sae-a signed by the network CA, expired yesterday."""
    ca_dir = Path(net.ca).parent
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qkdn"),
                                     x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "sae"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, "sae-a")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "expired.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "expired.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(directory / "expired.pem"), str(directory / "expired.key")


def _refused(s: requests.Session, url: str) -> bool:
    """The KM refused the connection or answered 401/403 without keys."""
    try:
        r = s.post(url, json={"number": 1}, timeout=10)
    except requests.exceptions.SSLError:
        return True
    except requests.exceptions.ConnectionError:
        return True
    return r.status_code in (401, 403) and "keys" not in r.text


def _tls_version_refused(host: str, port: int, version: ssl.TLSVersion, cert, ca) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    context.load_cert_chain(*cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    try:
        with socket.create_connection((host, port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"GET /api/v1/keys/sae-b/status HTTP/1.1\r\nHost: x\r\n\r\n")
            return not tls.recv(100).startswith(b"HTTP/1.1 200")
    except (ssl.SSLError, OSError):
        return True


def test_tls_refusals(net, tmp_path):
    base = net.kms["A"].base_url
    enc = f"{base}/api/v1/keys/sae-b/enc_keys"
    untrusted = _foreign_ca(tmp_path / "foreign").issue(tmp_path / "foreign", "sae-a", "sae-a",
                                                        "sae", server=False, client=True)
    km_cert = (str(net.tls("A").cert), str(net.tls("A").key))
    port = urlsplit(base).port
    results = {
        "no_certificate": _refused(session(net), enc),
        "untrusted_ca": _refused(session(net, cert=(str(untrusted.cert), str(untrusted.key))), enc),
        "expired_certificate": _refused(session(net, cert=_expired_cert(net, tmp_path / "old")),
                                        enc),
        "km_certificate_on_sae_api": _refused(session(net, cert=km_cert), enc),
        "sae_certificate_on_relay_api": _refused(session(net, "sae-a"),
                                                 f"{base}/relay/v1/ext_keys"),
        "tls_1_0": _tls_version_refused("127.0.0.1", port, ssl.TLSVersion.TLSv1,
                                        net.sae_cert("sae-a"), net.ca),
        "tls_1_1": _tls_version_refused("127.0.0.1", port, ssl.TLSVersion.TLSv1_1,
                                        net.sae_cert("sae-a"), net.ca),
    }
    # and the control: the same request with a valid certificate over TLS 1.2 and 1.3 works
    ok = session(net, "sae-a").post(enc, json={"number": 1}, timeout=10)
    results["valid_certificate_served"] = ok.status_code == 200
    results["tls_1_2_served"] = not _tls_version_refused("127.0.0.1", port, ssl.TLSVersion.TLSv1_2,
                                                         net.sae_cert("sae-a"), net.ca)
    reliability_report.record("authorization", "tls", results)
    assert all(results.values()), results
