"""ML-KEM-768 handshake between the two endpoint KMs of a session (ADR 0009, pure: no I/O).

The master's KM (initiator) sends an ephemeral encapsulation key signed with its KM
certificate's key; the slave's KM (responder) encapsulates, signs the transcript hash and
answers with the ciphertext. Both get the epoch secret ``P = HKDF-Extract(T, ss)`` where ``T``
hashes the request, the ciphertext and both certificates.

    >>> # see tests/unit/kms/test_kms_pqc_handshake.py for a full run with a test CA
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem
from cryptography.x509.oid import NameOID

from kms.errors import AuthenticationFailed
from kms.hybrid_kdf import epoch_secret
from kms.pki import KM_UNIT

KEM_NAME = "ML-KEM-768"


def canonical(obj: Any) -> bytes:
    """Sorted-key compact JSON (what signatures and MACs cover)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any, name: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise AuthenticationFailed(f"handshake field {name} is not base64") from None


@dataclass(frozen=True)
class KmCredentials:
    """A KM's certificate, its private key and the network CA (loaded once)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    @classmethod
    def load(cls, cert_path, key_path, ca_path) -> KmCredentials:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        with open(ca_path, "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("KM key must be an EC key")
        return cls(cert, key, ca)

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, data: bytes) -> str:
        return _b64(self.key.sign(data, ec.ECDSA(hashes.SHA256())))


def cert_fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _attr(cert: x509.Certificate, oid) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def verify_peer_certificate(pem: Any, ca: x509.Certificate, expected_node: str) -> x509.Certificate:
    """The peer KM's certificate: issued by the network CA, ``OU=km``, ``CN=expected_node``."""
    try:
        cert = x509.load_pem_x509_certificate(str(pem).encode())
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise AuthenticationFailed("peer KM certificate not issued by the network CA") from None
    if _attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) != KM_UNIT or \
            _attr(cert, NameOID.COMMON_NAME) != expected_node:
        raise AuthenticationFailed(f"certificate is not the KM of node {expected_node}")
    return cert


def _verify_signature(cert: x509.Certificate, signature: Any, data: bytes) -> None:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AuthenticationFailed("peer KM key is not an EC key")
    try:
        key.verify(_unb64(signature, "signature"), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AuthenticationFailed("handshake signature invalid") from None


def transcript_hash(request_unsigned: Mapping[str, Any], ciphertext_b64: str,
                    initiator: x509.Certificate, responder: x509.Certificate) -> bytes:
    """``T = SHA-256(canonical{request without signature, ciphertext, both cert hashes})``."""
    return hashlib.sha256(canonical({
        "request": dict(request_unsigned), "ciphertext": ciphertext_b64,
        "initiator_certificate_sha256": cert_fingerprint(initiator),
        "responder_certificate_sha256": cert_fingerprint(responder)})).digest()


@dataclass
class PendingHandshake:
    """The initiator's side between request and answer (holds the decapsulation key)."""

    request: dict[str, Any]
    decapsulation_key: mlkem.MLKEM768PrivateKey

    @property
    def epoch(self) -> str:
        return str(self.request["epoch"])


@dataclass(frozen=True)
class Epoch:
    """One established PQC epoch of a session (``secret`` = P, never logged)."""

    session: str
    epoch: str
    secret: bytes
    peer_node: str
    created: float


def start_handshake(creds: KmCredentials, session: str, master: str, slave: str,
                    epoch: str | None = None) -> PendingHandshake:
    """Initiator: build the signed request with a fresh ML-KEM-768 key pair."""
    dk = mlkem.MLKEM768PrivateKey.generate()
    unsigned = {"session": session, "epoch": epoch or str(uuid.uuid4()), "kem": KEM_NAME,
                "master_SAE_ID": master, "slave_SAE_ID": slave,
                "encapsulation_key": _b64(dk.public_key().public_bytes_raw()),
                "certificate": creds.cert_pem}
    return PendingHandshake({**unsigned, "signature": creds.sign(canonical(unsigned))}, dk)


def answer_handshake(creds: KmCredentials, request: Mapping[str, Any], initiator_node: str,
                     now: float) -> tuple[dict[str, Any], Epoch]:
    """Responder: check the request, encapsulate, sign the transcript; → (answer, epoch)."""
    try:
        unsigned = {k: request[k] for k in ("session", "epoch", "kem", "master_SAE_ID",
                                            "slave_SAE_ID", "encapsulation_key", "certificate")}
        signature = request["signature"]
    except (KeyError, TypeError):
        raise AuthenticationFailed("malformed handshake") from None
    if unsigned["kem"] != KEM_NAME:
        raise AuthenticationFailed(f"unsupported KEM {unsigned['kem']!r}")
    peer = verify_peer_certificate(unsigned["certificate"], creds.ca, initiator_node)
    _verify_signature(peer, signature, canonical(unsigned))
    try:
        ek = mlkem.MLKEM768PublicKey.from_public_bytes(
            _unb64(unsigned["encapsulation_key"], "encapsulation_key"))
    except ValueError:
        raise AuthenticationFailed("invalid ML-KEM encapsulation key") from None
    shared, ciphertext = ek.encapsulate()
    ct_b64 = _b64(ciphertext)
    t = transcript_hash(unsigned, ct_b64, peer, creds.cert)
    answer = {"epoch": unsigned["epoch"], "ciphertext": ct_b64, "certificate": creds.cert_pem,
              "signature": creds.sign(t)}
    return answer, Epoch(str(unsigned["session"]), str(unsigned["epoch"]),
                         epoch_secret(shared, t), initiator_node, now)


def finish_handshake(creds: KmCredentials, pending: PendingHandshake, answer: Mapping[str, Any],
                     responder_node: str, now: float) -> Epoch:
    """Initiator: check the responder's certificate and transcript signature, decapsulate."""
    try:
        ct_b64, pem, signature = answer["ciphertext"], answer["certificate"], answer["signature"]
    except (KeyError, TypeError):
        raise AuthenticationFailed("malformed handshake answer") from None
    if answer.get("epoch") != pending.epoch:
        raise AuthenticationFailed("handshake answer for another epoch")
    peer = verify_peer_certificate(pem, creds.ca, responder_node)
    unsigned = {k: v for k, v in pending.request.items() if k != "signature"}
    t = transcript_hash(unsigned, str(ct_b64), creds.cert, peer)
    _verify_signature(peer, signature, t)
    try:
        shared = pending.decapsulation_key.decapsulate(_unb64(ct_b64, "ciphertext"))
    except ValueError:
        raise AuthenticationFailed("invalid ML-KEM ciphertext") from None
    return Epoch(str(pending.request["session"]), pending.epoch, epoch_secret(shared, t),
                 responder_node, now)
