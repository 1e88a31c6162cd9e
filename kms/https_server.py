"""A production HTTPS server for the KM's WSGI apps: cheroot with TLS ≥ 1.2 and required,
CA-verified client certificates, run in threads as a context manager.

The verified peer certificate reaches the app in the WSGI environ (mod_ssl names set by
cheroot): ``SSL_CLIENT_S_DN_CN`` (the SAE_ID or KM node name) and ``SSL_CLIENT_S_DN_OU``
(``sae`` or ``km``); :func:`peer_identity` reads them. See ``docs/adr/0003-km-https-server.md``.

Slow clients: cheroot does the TLS handshake in its accept loop, so one client that connects
and never sends a ClientHello stalls every new connection for the socket timeout, and its
socket timeout is per ``recv``, so a client that sends its request a byte at a time holds a
worker thread for ever. Here the handshake runs in the worker thread
(:class:`_DeferredHandshakeAdapter`), and a :class:`ReadDeadlines` watchdog cuts a
connection whose handshake, request head and body are not all in within
``read_deadline_s`` of the first byte awaited (docs/reliability.md, item 2). An app may hold
a connection's next request back for a while (:func:`hold_connection`: a client refused for
its rate waits without a worker thread; item 7).
:func:`guard_server` installs the same protection on any cheroot WSGI server (the
orchestrator's, over HTTPS or plain HTTP).
"""

from __future__ import annotations

import contextlib
import heapq
import io
import itertools
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from cheroot import wsgi
from cheroot.errors import MaxSizeExceeded
from cheroot.server import HTTPConnection, HTTPRequest
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cheroot.workers.threadpool import ThreadPool

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


def server_tls_context(files: TlsFiles, *,
                       client_cert: ssl.VerifyMode = ssl.CERT_REQUIRED) -> ssl.SSLContext:
    """TLS ≥ 1.2; a client certificate, required by default (``ssl.CERT_OPTIONAL``: asked
    for, not required), is verified against the network CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = client_cert
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def client_tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Client side of mutual TLS (for KM-to-KM calls and tests)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


#: Whole-request read limit: TLS handshake + request line + headers + body.
DEFAULT_READ_DEADLINE_S = 10.0
#: Largest request body the KM's APIs accept (their JSON bodies are a few KiB).
MAX_BODY_BYTES = 1 << 20
#: Largest request line + headers (cheroot's default is unlimited).
MAX_HEADER_BYTES = 64 << 10
#: Idle keep-alive connections a server keeps (each closed after ``read_deadline_s`` idle).
#: cheroot's default, 10, answered every request beyond the tenth open connection with
#: ``Connection: close``: a KM with more than ten SAEs and neighbours connected at once made
#: one TLS handshake per request (≈ 30 handshakes/s at 200 requests/s with 16 SAE pairs:
#: CPU, a backlog, and the CPython 3.11 session leak of :class:`_WithoutSession` on each).
KEEP_ALIVE_CONNECTIONS = 512


class ReadDeadlines:
    """Watchdog: a worker thread registers the socket it reads a request from; if the read is
    not finished by the deadline the socket is shut down, which wakes the blocked ``recv``."""

    def __init__(self, limit_s: float, name: str) -> None:
        self.limit_s = limit_s
        self._active: dict[int, tuple[socket.socket, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.cut_count = 0
        self._thread = threading.Thread(target=self._run, name=f"deadlines-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def begin(self, sock: socket.socket) -> None:
        """The calling thread starts reading a request from ``sock``."""
        with self._lock:
            self._active[threading.get_ident()] = (sock, time.monotonic() + self.limit_s)

    def end(self) -> None:
        """The calling thread has read its whole request (or gave up)."""
        with self._lock:
            self._active.pop(threading.get_ident(), None)

    @property
    def check_s(self) -> float:
        """Seconds between two looks for late reads: a tenth of the limit, 50 ms to 1 s (an
        idle KM wakes once a second, not five times)."""
        return max(0.05, min(1.0, self.limit_s / 10))

    def _run(self) -> None:
        while not self._stop.wait(self.check_s):
            now = time.monotonic()
            with self._lock:
                late = [(t, s) for t, (s, deadline) in self._active.items() if deadline <= now]
                for ident, _ in late:
                    del self._active[ident]
            for _, sock in late:
                self.cut_count += 1
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    """Shut a connection down under a thread blocked on it (through a duplicate descriptor,
    so the ``SSLSocket`` object the worker uses is left intact)."""
    try:
        dup = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


#: Longest a connection's next request is held back after a refusal (:func:`hold_connection`).
MAX_HOLD_S = 1.0

#: The connection the calling worker thread is serving (set by :class:`_GuardedConnection`).
_serving = threading.local()


def hold_connection(seconds: float) -> None:
    """Called by an app while it answers a request: read this connection's next request no
    earlier than ``seconds`` (at most :data:`MAX_HOLD_S`) from now. The answer goes out at
    once; meanwhile the connection waits in :class:`ConnectionHolds` — in neither the selector
    nor a worker thread. A client refused for its rate (token bucket) thus cannot make the KM
    spend its CPU on refusals faster than its connections' holds run out (item 7 of
    docs/reliability.md). A no-op outside a guarded server's worker thread."""
    conn = getattr(_serving, "connection", None)
    if conn is not None and seconds > 0:
        conn.resume_at = max(conn.resume_at, time.monotonic() + min(seconds, MAX_HOLD_S))


class ConnectionHolds:
    """Keep-alive connections held back until their ``resume_at`` (monotonic) before they go
    back to the server (``put``: cheroot's ``put_conn``, which registers them with the
    selector again). One thread for all of them, asleep while none is held."""

    def __init__(self, put: Callable[[Any], None], name: str,
                 process: Callable[[Any], None] | None = None) -> None:
        self._put = put
        #: hands a connection straight to the worker threads (cheroot's ``process_conn``)
        self._process = process
        self._held: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"holds-{name}", daemon=True)
        self._started = False

    def put_conn(self, conn: Any) -> None:
        """cheroot's ``put_conn`` with holds: a connection due later waits here."""
        resume_at = getattr(conn, "resume_at", 0.0)
        if resume_at <= time.monotonic():
            self._put(conn)
            return
        with self._cond:
            if self._stopped:
                conn.close()
                return
            if not self._started:
                self._thread.start()
                self._started = True
            heapq.heappush(self._held, (resume_at, next(self._seq), conn))
            self._cond.notify()

    @property
    def held(self) -> int:
        with self._cond:
            return len(self._held)

    def stop(self) -> None:
        """Close every held connection; later holds close at once."""
        with self._cond:
            self._stopped = True
            held, self._held = self._held, []
            self._cond.notify()
        for _, _, conn in held:
            conn.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and \
                        (not self._held or self._held[0][0] > time.monotonic()):
                    self._cond.wait(self._held[0][0] - time.monotonic() if self._held else None)
                if self._stopped:
                    return
                due = []
                while self._held and self._held[0][0] <= time.monotonic():
                    due.append(heapq.heappop(self._held)[2])
            for conn in due:
                try:
                    self._resume(conn)
                except Exception:   # e.g. the socket closed meanwhile: drop that one only
                    log.debug("held connection could not be resumed", exc_info=True)
                    conn.close()

    def _resume(self, conn: Any) -> None:
        """A held connection whose next request has arrived goes straight to the worker
        threads (a held client has usually sent it at once); otherwise to the selector. The
        selector's round trip (register, wake, unregister, queue) was most of the time
        between a turn and its request's admission (docs/reliability.md, "Session 5")."""
        if self._process is not None and _has_request_bytes(conn):
            conn.last_used = time.time()   # as cheroot's ConnectionManager.put
            self._process(conn)
        else:
            self._put(conn)


def _has_request_bytes(conn: Any) -> bool:
    """Whether bytes of a connection's next request can be read now (TLS: decrypted and
    pending, or on the socket)."""
    sock = conn.socket
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
    except (OSError, ValueError):
        return False
    return conn.rfile.has_data() or _readable(sock)


class _WithoutSession:
    """A TLS socket as :meth:`BuiltinSSLAdapter.get_environ` reads it, minus ``session``
    (AttributeError, which cheroot skips: no ``SSL_SESSION_ID`` in the environ).

    CPython 3.11's ``SSLSocket.session`` getter leaks the ``SSL_SESSION`` it returns (it
    duplicates the session, then drops the duplicate for a second reference: CPython issue
    gh-116810, fixed in 3.12.7 and 3.13.1, not in 3.11), and a server-side session holds the
    client's certificate: ≈ 5.9 KB of C memory per read. cheroot reads it once per TLS
    connection, which made every ``km serve`` process grow with the handshakes it accepted
    (reliability item 6, docs/reliability.md "Session 6: item 6 memory")."""

    def __init__(self, sock: ssl.SSLSocket | ssl.SSLObject) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        if name == "session":
            raise AttributeError("session: not read (it leaks in CPython 3.11)")
        return getattr(self._sock, name)


class _DeferredHandshakeAdapter(BuiltinSSLAdapter):
    """Wraps accepted sockets without a handshake; :class:`_GuardedConnection` does it.
    Its environ leaves ``SSL_SESSION_ID`` out (:class:`_WithoutSession`)."""

    def wrap(self, sock):
        return self.context.wrap_socket(sock, do_handshake_on_connect=False,
                                        server_side=True), {}

    def get_environ(self, sock):
        """cheroot's TLS environ of a connection, without reading ``sock.session``."""
        return super().get_environ(_WithoutSession(sock))


class _ClosingRefusalRequest(HTTPRequest):
    """cheroot's request, whose 413 and 414 refusals always say ``Connection: close``.

    cheroot closes the connection after them but leaves the header out of a 414 (a request
    line too long to read has no known protocol yet), so an HTTP/1.1 client took the
    connection for kept alive and sent its next request into the close."""

    def simple_response(self, status, msg=""):
        if str(status)[:3] in {"413", "414"}:
            self.response_protocol = "HTTP/1.1"   # what the server speaks; the header follows
        return super().simple_response(status, msg)


class _GuardedConnection(HTTPConnection):
    """TLS handshake step by step in worker threads, driven by cheroot's selector (a silent or
    trickling client holds no thread), bounded by the read deadline; then every request read
    under the :class:`ReadDeadlines` watchdog."""

    RequestHandlerClass = _ClosingRefusalRequest
    _handshake_done = False
    _handshake_started: float | None = None
    #: monotonic time before which the next request is not read (:func:`hold_connection`)
    resume_at = 0.0

    def communicate(self):
        if not self._handshake_done:
            if isinstance(self.socket, ssl.SSLSocket):
                if not self._continue_handshake():
                    return False
                if not self.socket.pending() and not self.rfile.has_data():
                    return True  # back to the selector until the request arrives
            else:  # plain HTTP: cheroot hands a fresh connection straight to a worker
                self._handshake_done = True
                if not self.rfile.has_data() and not _readable(self.socket):
                    return True  # wait in the selector, not in a worker thread
        deadlines: ReadDeadlines = self.server.read_deadlines
        deadlines.begin(self.socket)
        _serving.connection = self
        try:
            return super().communicate()
        finally:
            _serving.connection = None
            deadlines.end()

    def close(self):
        """Close the connection, first reading what the client is still sending
        (:func:`drain_before_close`) once the TLS session is up. On cheroot's selector thread
        (an idle connection expired) that drain, up to :data:`LINGER_S`, would hold every other
        connection's dispatch: it runs in a background thread instead (at most
        :data:`MAX_BACKGROUND_DRAINS` at once; beyond, the connection closes at once)."""
        if self._handshake_done and threading.get_ident() in SELECTOR_THREADS \
                and _has_unread_bytes(self.socket):
            if _background_drains.acquire(blocking=False):
                threading.Thread(target=self._drain_then_close, name="drain-before-close",
                                 daemon=True).start()
                return
        elif self._handshake_done:
            drain_before_close(self.socket)
        super().close()

    def _drain_then_close(self) -> None:
        try:
            drain_before_close(self.socket)
            super().close()
        except Exception:
            log.debug("background drain failed", exc_info=True)
        finally:
            _background_drains.release()

    def _continue_handshake(self) -> bool:
        """Advance the handshake with what has arrived; False to drop the connection."""
        now = time.monotonic()
        if self._handshake_started is None:
            self._handshake_started = now
        elif now - self._handshake_started > self.server.read_deadlines.limit_s:
            return False
        self.socket.settimeout(0.0)
        try:
            self.socket.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True  # wait in the selector for the next bytes
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.remote_addr, exc)
            return False
        finally:
            self.socket.settimeout(self.server.timeout)
        self._handshake_done = True
        self.ssl_env = self.server.ssl_adapter.get_environ(self.socket)
        return True


#: Renders a refusal of the guard (status code, reason) as (content type, body).
ErrorRenderer = Callable[[int, str], tuple[str, bytes]]


def json_message_error(status: int, reason: str) -> tuple[str, bytes]:
    """The KM APIs' error shape: ``{"message": reason}``."""
    return "application/json", json.dumps({"message": reason}).encode()


_STATUS_LINES = {400: "400 Bad Request", 413: "413 Content Too Large"}


#: a closing connection reads what its client is still sending for at most this long / this
#: many bytes, and stops after this long without a byte (:func:`drain_before_close`)
LINGER_S, LINGER_BYTES, LINGER_IDLE_S = 1.0, 8 << 20, 0.1


#: idents of threads running a guarded server's selector loop (:func:`selector_thread`)
SELECTOR_THREADS: set[int] = set()
#: drains handed off by a selector thread that may run at once (:meth:`_GuardedConnection.close`)
MAX_BACKGROUND_DRAINS = 8
_background_drains = threading.BoundedSemaphore(MAX_BACKGROUND_DRAINS)


@contextlib.contextmanager
def selector_thread() -> Iterator[None]:
    """Mark the calling thread as a selector thread while the block runs (cheroot's
    ``serve`` loop in :class:`GuardedServer`): connections it closes never wait there for
    their client's input to drain."""
    ident = threading.get_ident()
    SELECTOR_THREADS.add(ident)
    try:
        yield
    finally:
        SELECTOR_THREADS.discard(ident)


def _has_unread_bytes(sock: socket.socket | ssl.SSLSocket) -> bool:
    try:
        return (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0) or _readable(sock)
    except (OSError, ValueError):
        return False


def drain_before_close(sock: socket.socket | ssl.SSLSocket) -> int:
    """Read and drop the bytes a client is still sending before its connection is closed;
    the number of bytes dropped.

    Closing a socket with unread input makes the kernel answer with a reset, and a client
    still sending its request (a URI or header refused with 414, a body refused with 413)
    then loses the answer already sent to it: it sees ``ECONNRESET`` / ``SSLEOFError``
    instead (reliability item 2, docs/reliability.md). RFC 9112 §9.6 asks a server to close
    its sending side and keep reading until the client is done; this does so (a TLS
    connection without ``close_notify``: the TCP FIN ends it) for at most :data:`LINGER_S` and
    :data:`LINGER_BYTES`, and not at all when nothing is waiting to be read (an idle or
    finished connection closes at once)."""
    try:
        if not _has_unread_bytes(sock):
            return 0
        deadline = time.monotonic() + LINGER_S
        dropped = 0
        # the answer is sent: a FIN after it tells the client that no other request will be
        # read here (it must not send one on this connection), then its input is drained
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER_IDLE_S)
        while dropped < LINGER_BYTES and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            dropped += len(chunk)
        return dropped
    except (OSError, ValueError):   # timeout, reset, TLS alert: nothing more to wait for
        return 0


def _readable(sock: socket.socket) -> bool:
    """Whether bytes (or EOF) can be read from ``sock`` now, without blocking."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # let the read find out what is wrong


def _guarded_app(app: Callable, deadlines: ReadDeadlines,
                 render_error: ErrorRenderer = json_message_error) -> Callable:
    """Read the body under the deadline (at most :data:`MAX_BODY_BYTES`), then run the app
    with the deadline lifted (a 004 GET_KEY may legitimately wait for key)."""

    def refuse(start_response: Callable, status: int, reason: str) -> list[bytes]:
        deadlines.end()
        content_type, body = render_error(status, reason)
        start_response(_STATUS_LINES[status], [("Content-Type", content_type),
                                               ("Content-Length", str(len(body))),
                                               ("Connection", "close")])
        return [body]

    def run(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            return refuse(start_response, 413, "request body too large")
        stream = environ["wsgi.input"]
        try:
            body = stream.read(length) if length else stream.read(MAX_BODY_BYTES + 1)
        except MaxSizeExceeded:
            return refuse(start_response, 413, "request body too large")
        except (OSError, ValueError, OverflowError):  # e.g. a chunk size past ssize_t
            return refuse(start_response, 400, "request body could not be read")
        deadlines.end()
        if len(body) > MAX_BODY_BYTES:
            return refuse(start_response, 413, "request body too large")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return app(environ, start_response)

    return run


def guard_server(server: wsgi.Server, *, name: str,
                 read_deadline_s: float = DEFAULT_READ_DEADLINE_S,
                 tls: tuple[TlsFiles, ssl.SSLContext] | None = None,
                 render_error: ErrorRenderer = json_message_error) -> ReadDeadlines:
    """Protect a cheroot WSGI server (built, not yet started) against slow and silent
    clients: TLS handshakes in worker threads driven by the selector (with ``tls``: the
    server's files and context), the whole-request read deadline, header and body size
    limits, and up to :data:`KEEP_ALIVE_CONNECTIONS` idle keep-alive connections. Used by
    the KM (:class:`HttpsServer`) and the orchestrator. The caller starts and stops the
    returned watchdog with the server."""
    deadlines = ReadDeadlines(read_deadline_s, name)
    server.wsgi_app = _guarded_app(server.wsgi_app, deadlines, render_error)
    server.timeout = read_deadline_s
    server.max_request_header_size = MAX_HEADER_BYTES
    server.max_request_body_size = MAX_BODY_BYTES
    server.keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
    server.ConnectionClass = _GuardedConnection
    server.read_deadlines = deadlines  # type: ignore[attr-defined]  # read by _GuardedConnection
    holds = ConnectionHolds(server.put_conn, name, process=server.process_conn)
    server.put_conn = holds.put_conn  # type: ignore[method-assign]  # worker threads call it
    server.connection_holds = holds  # type: ignore[attr-defined]  # stopped by GuardedServer
    if tls is not None:
        files, context = tls
        adapter = _DeferredHandshakeAdapter(str(files.cert), str(files.key), str(files.ca))
        adapter.context = context
        server.ssl_adapter = adapter
    return deadlines


#: glibc arenas a process serving HTTPS keeps (``M_ARENA_MAX``; see :func:`limit_malloc_arenas`)
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8   # glibc's mallopt parameter number
_arenas_limited = False


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Limit glibc's malloc arenas for the whole process (as ``MALLOC_ARENA_MAX`` would,
    which must be set before the process starts). With 32 worker threads glibc opens up to
    8 arenas per core, each of which keeps its high-water mark: under sustained load a KM's
    RSS grew by 10-24 % within a minute (docs/reliability.md, "Session 5"), half of it in
    arenas, while the Python heap stayed flat. Python threads run one at a time (GIL), so
    the arenas buy no parallelism. Called once, before a server's worker threads start;
    True if applied (glibc), False elsewhere. ``QKDN_MALLOC_ARENAS=0`` leaves malloc alone."""
    global _arenas_limited
    if _arenas_limited:
        return True
    wanted = int(os.environ.get("QKDN_MALLOC_ARENAS", arenas))
    if wanted <= 0:
        return False
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        _arenas_limited = bool(libc.mallopt(_M_ARENA_MAX, wanted))
    except (OSError, AttributeError):
        return False
    return _arenas_limited


class _PromptThreadPool(ThreadPool):
    """cheroot's worker pool, started without its 0.1 s polling sleep: ``ThreadPool.grow``
    spawns the workers, then sleeps 0.1 s while the newest is not yet running — a tenth of a
    second of every KM start (docs/twin.md, start-up timeline). Here each worker is awaited
    in 1 ms steps."""

    def grow(self, amount: int) -> None:
        budget = max(self.max - len(self._threads), 0)  # max: an int or inf
        workers = [self._spawn_worker() for _ in range(int(min(amount, budget)))]
        for worker in workers:
            while not worker.ready:
                time.sleep(0.001)
        self._threads.extend(workers)


def forget_server_statistics(server: wsgi.Server) -> None:
    """Drop a stopped cheroot server from ``logging.statistics``: cheroot registers every
    server there (``HTTPServer.clear_stats``) with closures over the server, which kept the
    server, its WSGI app and everything the app reaches (a whole KM: its relay connections,
    stores, threads' objects) alive for the life of the process — in tests and benchmarks
    that run many servers in one process, their sockets stayed open after ``stop``."""
    statistics = getattr(logging, "statistics", None)
    if isinstance(statistics, dict):
        statistics.pop(f"Cheroot HTTPServer {id(server)}", None)


class GuardedServer:
    """A cheroot server protected by :func:`guard_server`, served on a thread of its own:
    ``with server: server.base_url``. Subclasses build the server and its guard."""

    def __init__(self, server: wsgi.Server, read_deadlines: ReadDeadlines, *, scheme: str,
                 url_host: str, label: str, thread_name: str) -> None:
        self._server = server
        self.read_deadlines = read_deadlines
        self.scheme = scheme
        self._url_host = url_host
        self._label = label
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self._url_host}:{self.port}"

    def start(self) -> Self:
        limit_malloc_arenas()   # before the worker threads allocate
        self._server.prepare()  # binds, so .port is known on return
        self.read_deadlines.start()
        self._thread = threading.Thread(target=self._serve, name=self._thread_name,
                                        daemon=True)
        self._thread.start()
        log.info("%s listening on %s", self._label, self.base_url)
        return self

    def _serve(self) -> None:
        with selector_thread():   # cheroot's selector loop runs in this thread
            self._server.serve()

    @property
    def connection_holds(self) -> ConnectionHolds:
        return self._server.connection_holds  # type: ignore[attr-defined]  # guard_server

    def stop(self) -> None:
        self.read_deadlines.stop()
        self._server.stop()
        self.connection_holds.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        forget_server_statistics(self._server)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpsServer(GuardedServer):
    """cheroot serving ``app`` on ``host:port`` (0 = ephemeral) with mutual TLS.

    >>> with HttpsServer(app, files) as server:   # doctest: +SKIP
    ...     requests.get(server.base_url + "/...", cert=..., verify=ca)
    """

    def __init__(self, app: Callable, files: TlsFiles, host: str = "127.0.0.1", port: int = 0,
                 threads: int = 16, name: str = "km",
                 read_deadline_s: float = DEFAULT_READ_DEADLINE_S) -> None:
        server = wsgi.Server((host, port), app, numthreads=threads, server_name=name,
                             request_queue_size=64, timeout=read_deadline_s,
                             shutdown_timeout=2)
        server.requests = _PromptThreadPool(server, min=threads, max=server.requests.max)
        super().__init__(server, guard_server(server, name=name, read_deadline_s=read_deadline_s,
                                              tls=(files, server_tls_context(files))),
                         scheme="https", url_host="127.0.0.1",
                         label=f"{name}: HTTPS (mTLS)", thread_name=f"https-{name}")
