"""cheroot serving the orchestrator's app over HTTP or HTTPS, in a thread, as a context
manager. With HTTPS a client certificate is requested but optional (operators may use a
bearer token instead); a presented certificate must chain to the network CA.

Slow and silent clients are handled as on the KM (:func:`kms.https_server.guard_server`): the
TLS handshake runs in worker threads driven by cheroot's selector (a client that never sends
its ClientHello holds no thread and stalls no one), a connection whose handshake, request head
and body are not in within :data:`READ_DEADLINE_S` is cut, and heads over 64 KiB / bodies over
1 MiB are refused (413/414, as problem details)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from cheroot import wsgi

from kms.https_server import DEFAULT_READ_DEADLINE_S, TlsFiles, guard_server
from orchestrator.openapi import PROBLEM_MEDIA
from orchestrator.problems import problem_body

#: Whole-request read limit (TLS handshake + request head + body), as on the KM.
READ_DEADLINE_S = DEFAULT_READ_DEADLINE_S
_GUARD_SLUGS = {400: ("invalid-request", "Invalid request"),
                413: ("content-too-large", "Content too large")}

log = logging.getLogger(__name__)


def operator_tls_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS ≥ 1.2; client certificates optional, verified against the network CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def guard_problem(status: int, reason: str) -> tuple[str, bytes]:
    """A refusal of the server's guard (body too large or unreadable) as RFC 9457 JSON."""
    slug, title = _GUARD_SLUGS[status]
    return PROBLEM_MEDIA, json.dumps(problem_body(status, slug, title, reason)).encode()


class OrchestratorServer:
    """``with OrchestratorServer(app) as server: server.base_url``."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0,
                 tls: TlsFiles | None = None, threads: int = 24,
                 read_deadline_s: float = READ_DEADLINE_S) -> None:
        self._server = wsgi.Server((host, port), app, numthreads=threads,
                                   server_name="qkdn-orchestrator", request_queue_size=64,
                                   shutdown_timeout=2)   # timeout: set by guard_server
        self.host = host
        self.scheme = "http" if tls is None else "https"
        self.read_deadlines = guard_server(
            self._server, name="orchestrator", read_deadline_s=read_deadline_s,
            tls=None if tls is None else (tls, operator_tls_context(tls)),
            render_error=guard_problem)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> Self:
        self._server.prepare()
        self.read_deadlines.start()
        self._thread = threading.Thread(target=self._server.serve, name="orchestrator-http",
                                        daemon=True)
        self._thread.start()
        log.info("orchestrator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        self.read_deadlines.stop()
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tls_files(cert: Path, key: Path, ca: Path) -> TlsFiles:
    return TlsFiles(Path(cert), Path(key), Path(ca))
