"""A production HTTPS server for the KM's WSGI apps: cheroot with TLS ≥ 1.2 and required,
CA-verified client certificates, run in threads as a context manager.

The verified peer certificate reaches the app in the WSGI environ (mod_ssl names set by
cheroot): ``SSL_CLIENT_S_DN_CN`` (the SAE_ID or KM node name) and ``SSL_CLIENT_S_DN_OU``
(``sae`` or ``km``); :func:`peer_identity` reads them. See ``docs/adr/0003-km-https-server.md``.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate, its key, and the CA that client certificates must chain to."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class PeerIdentity:
    """The subject of the verified client certificate."""

    common_name: str
    unit: str


def peer_identity(environ: dict[str, Any]) -> PeerIdentity | None:
    """The verified client identity of a request, or None without a verified certificate."""
    if environ.get("SSL_CLIENT_VERIFY") != "SUCCESS":
        return None
    cn = environ.get("SSL_CLIENT_S_DN_CN")
    if not cn:
        return None
    return PeerIdentity(common_name=cn, unit=environ.get("SSL_CLIENT_S_DN_OU", ""))


def server_tls_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS ≥ 1.2, client certificate required and verified against the network CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def client_tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Client side of mutual TLS (for KM-to-KM calls and tests)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


class HttpsServer:
    """cheroot serving ``app`` on ``host:port`` (0 = ephemeral) with mutual TLS.

    >>> with HttpsServer(app, files) as server:   # doctest: +SKIP
    ...     requests.get(server.base_url + "/...", cert=..., verify=ca)
    """

    def __init__(self, app: Callable, files: TlsFiles, host: str = "127.0.0.1", port: int = 0,
                 threads: int = 16, name: str = "km") -> None:
        self._server = wsgi.Server((host, port), app, numthreads=threads, server_name=name,
                                   request_queue_size=64, timeout=30, shutdown_timeout=2)
        adapter = BuiltinSSLAdapter(str(files.cert), str(files.key), str(files.ca))
        adapter.context = server_tls_context(files)
        self._server.ssl_adapter = adapter
        self._thread: threading.Thread | None = None
        self._name = name

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> HttpsServer:
        self._server.prepare()  # binds, so .port is known on return
        self._thread = threading.Thread(target=self._server.serve, name=f"https-{self._name}",
                                        daemon=True)
        self._thread.start()
        log.info("%s: HTTPS (mTLS) listening on %s", self._name, self.base_url)
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HttpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
