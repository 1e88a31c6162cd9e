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
from collections.abc import Callable
from pathlib import Path

from cheroot import wsgi

from kms.https_server import (
    DEFAULT_READ_DEADLINE_S,
    GuardedServer,
    TlsFiles,
    guard_server,
    server_tls_context,
)
from orchestrator.openapi import PROBLEM_MEDIA
from orchestrator.problems import problem_body

#: Whole-request read limit (TLS handshake + request head + body), as on the KM.
READ_DEADLINE_S = DEFAULT_READ_DEADLINE_S
_GUARD_SLUGS = {400: ("invalid-request", "Invalid request"),
                413: ("content-too-large", "Content too large")}

log = logging.getLogger(__name__)


def guard_problem(status: int, reason: str) -> tuple[str, bytes]:
    """A refusal of the server's guard (body too large or unreadable) as RFC 9457 JSON."""
    slug, title = _GUARD_SLUGS[status]
    return PROBLEM_MEDIA, json.dumps(problem_body(status, slug, title, reason)).encode()


class OrchestratorServer(GuardedServer):
    """``with OrchestratorServer(app) as server: server.base_url``."""

    def __init__(self, app: Callable, host: str = "127.0.0.1", port: int = 0,
                 tls: TlsFiles | None = None, threads: int = 24,
                 read_deadline_s: float = READ_DEADLINE_S) -> None:
        server = wsgi.Server((host, port), app, numthreads=threads,
                             server_name="qkdn-orchestrator", request_queue_size=64,
                             shutdown_timeout=2)   # timeout: set by guard_server
        read_deadlines = guard_server(
            server, name="orchestrator", read_deadline_s=read_deadline_s,
            tls=None if tls is None else (  # operators' certificates optional
                tls, server_tls_context(tls, client_cert=ssl.CERT_OPTIONAL)),
            render_error=guard_problem)
        super().__init__(server, read_deadlines, scheme="http" if tls is None else "https",
                         url_host=host, label="orchestrator", thread_name="orchestrator-http")
        self.host = host


def tls_files(cert: Path, key: Path, ca: Path) -> TlsFiles:
    return TlsFiles(Path(cert), Path(key), Path(ca))
