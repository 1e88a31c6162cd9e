"""Certificates for an orchestrator serving HTTPS in a network's state directory: a server
certificate and an operator client certificate (``OU=operator``), both from the network CA
(``DIR/pki/ca.pem``, :class:`kms.pki.CertificateAuthority`). Issued once, then reused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kms.https_server import TlsFiles
from kms.pki import CertificateAuthority, CertPaths
from orchestrator.auth import OPERATOR_UNIT


@dataclass(frozen=True)
class OrchestratorPki:
    server: TlsFiles  #: the orchestrator's certificate, key, and the CA of client certs
    operator: CertPaths  #: a client certificate an operator (or a script) can present


def issue_orchestrator_pki(state_dir: Path) -> OrchestratorPki:
    """Create (or reuse) the orchestrator's server and operator certificates."""
    pki = Path(state_dir) / "pki"
    ca = CertificateAuthority.create_or_load(pki)
    server = CertPaths(pki / "orchestrator" / "server.pem", pki / "orchestrator" / "server.key")
    if not (server.cert.exists() and server.key.exists()):
        server = ca.issue(pki / "orchestrator", "server", "orchestrator", "orchestrator",
                          server=True, client=False)
    operator = CertPaths(pki / "operator" / "operator.pem", pki / "operator" / "operator.key")
    if not (operator.cert.exists() and operator.key.exists()):
        operator = ca.issue(pki / "operator", "operator", "operator", OPERATOR_UNIT,
                            server=False, client=True)
    return OrchestratorPki(TlsFiles(server.cert, server.key, ca.paths.cert), operator)
