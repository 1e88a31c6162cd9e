"""The network PKI for mutual TLS: one CA per network, a server certificate per KM, a client
certificate per SAE and per KM.

Identity conventions (what the servers read from the peer certificate):

* SAE client certificate: subject ``CN=<SAE_ID>``, ``OU=sae``; the KM takes the SAE_ID from the
  CN of the verified certificate and nothing else;
* KM certificate (server *and* client for KM-to-KM relay): subject ``CN=<node name>``,
  ``OU=km``, SAN ``DNS:localhost``, ``IP:127.0.0.1`` (and ``DNS:<node name>``); the relay
  accepts a KM client only with ``OU=km``.

Keys are ECDSA P-256, certificates valid for ten years (a test network's lifetime), private
keys written mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SAE_UNIT = "sae"
KM_UNIT = "km"
_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class CertPaths:
    """A certificate and its private key on disk."""

    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qkdn"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


class CertificateAuthority:
    """A network CA that signs KM and SAE certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, paths: CertPaths):
        self.cert, self._key, self.paths = cert, key, paths

    @classmethod
    def create_or_load(cls, directory: Path, name: str = "qkdn network CA") -> CertificateAuthority:
        paths = CertPaths(directory / "ca.pem", directory / "ca.key")
        if paths.cert.exists() and paths.key.exists():
            cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
            key = serialization.load_pem_private_key(paths.key.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(cert, key, paths)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qkdn"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                             False), critical=True)
                .sign(key, hashes.SHA256()))
        _write_key(paths.key, key)
        _write_cert(paths.cert, cert)
        return cls(cert, key, paths)

    def issue(self, directory: Path, stem: str, common_name: str, unit: str, *,
              server: bool, client: bool, dns_names: Iterable[str] = ()) -> CertPaths:
        """Issue a leaf certificate; written to ``directory/stem.pem`` and ``stem.key``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (x509.CertificateBuilder().subject_name(_name(common_name, unit))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + _VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if server:
            sans: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            sans += [x509.DNSName(n) for n in dns_names]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        paths = CertPaths(directory / f"{stem}.pem", directory / f"{stem}.key")
        _write_key(paths.key, key)
        _write_cert(paths.cert, cert)
        return paths


def km_cert_paths(state_dir: Path, node: str) -> CertPaths:
    """Where the KM certificate of ``node`` lives in a network state directory."""
    return CertPaths(state_dir / "pki" / "km" / f"{node}.pem", state_dir / "pki" / "km" / f"{node}.key")


def issue_network_pki(state_dir: Path | str, node_names: Iterable[str],
                      sae_ids: dict[str, str]) -> dict:
    """Create (or reuse) the network CA and issue every KM and SAE certificate.

    ``sae_ids`` maps SAE_ID → node name. Returns the part of ``endpoints.json`` the bring-up
    records: ``{"ca_cert": path, "saes": {SAE_ID: {"node", "cert", "key"}},
    "kms": {node: {"cert", "key"}}}`` (paths as strings).
    """
    state_dir = Path(state_dir)
    pki = state_dir / "pki"
    ca = CertificateAuthority.create_or_load(pki)
    result: dict = {"ca_cert": str(ca.paths.cert), "saes": {}, "kms": {}}
    for node in node_names:
        paths = ca.issue(pki / "km", node, node, KM_UNIT, server=True, client=True,
                         dns_names=[node] if _is_dns_label(node) else [])
        result["kms"][node] = {"cert": str(paths.cert), "key": str(paths.key)}
    for sae_id, node in sae_ids.items():
        paths = ca.issue(pki / "sae", _file_stem(sae_id), sae_id, SAE_UNIT, server=False, client=True)
        result["saes"][sae_id] = {"node": node, "cert": str(paths.cert), "key": str(paths.key)}
    return result


def _is_dns_label(name: str) -> bool:
    return all(c.isalnum() or c in "-." for c in name) and bool(name)


def _file_stem(sae_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in sae_id)


class NetworkPkiFiles:
    """What a test or benchmark network offers its clients from the PKI it issued
    (``self.pki``, as :func:`issue_network_pki` returns it): an SAE's certificate and key
    files, and the network CA to verify the KMs with."""

    pki: dict

    def sae_cert(self, sae_id: str) -> tuple[str, str]:
        entry = self.pki["saes"][sae_id]
        return entry["cert"], entry["key"]

    @property
    def ca(self) -> str:
        return self.pki["ca_cert"]
