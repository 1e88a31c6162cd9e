"""cheroot serving the orchestrator's app over HTTP or HTTPS, in a thread, as a context
manager. With HTTPS a client certificate is requested but optional (operators may use a
bearer token instead); a presented certificate must chain to the network CA."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from kms.https_server import TlsFiles

log = logging.getLogger(__name__)


def operator_tls_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS ≥ 1.2; client certificates optional, verified against the network CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


class OrchestratorServer:
    """``with OrchestratorServer(app) as server: server.base_url``."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0,
                 tls: TlsFiles | None = None, threads: int = 24) -> None:
        self._server = wsgi.Server((host, port), app, numthreads=threads,
                                   server_name="qkdn-orchestrator", request_queue_size=64,
                                   timeout=30, shutdown_timeout=2)
        self.host = host
        self.scheme = "http"
        if tls is not None:
            adapter = BuiltinSSLAdapter(str(tls.cert), str(tls.key), str(tls.ca))
            adapter.context = operator_tls_context(tls)
            self._server.ssl_adapter = adapter
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> Self:
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="orchestrator-http",
                                        daemon=True)
        self._thread.start()
        log.info("orchestrator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tls_files(cert: Path, key: Path, ca: Path) -> TlsFiles:
    return TlsFiles(Path(cert), Path(key), Path(ca))
