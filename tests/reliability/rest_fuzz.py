"""REST fuzzing from an OpenAPI description (schemathesis), raw garbage on the socket, and slow
clients: reusable against any HTTPS API of qkdn (the KM's ETSI 014 and 004, the orchestrator).

    target = FuzzTarget("etsi014", km.base_url, load_description("etsi014"),
                        session_factory=lambda: sae_session(ca, cert, key))
    result = run_schema_fuzz(target, examples=50, seed=1)
    result["server_errors"], result["schema_violations"], result["failures"][:5]

A *server error* is any 5xx except a 503 the description documents for that operation; a
*schema violation* is a failed schemathesis check (status code documented, content type,
response body against its schema; for negative cases the request must be refused with a 4xx).
"""

from __future__ import annotations

import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

REQUEST_TIMEOUT_S = 15
#: a pooled connection idle this long is not reused: the servers close keep-alive connections
#: idle for their read deadline (``kms.https_server.DEFAULT_READ_DEADLINE_S``, 10 s), and a
#: request sent as the server closes meets a closed socket (``SSLEOFError``)
IDLE_REUSE_S = 8.0


@dataclass
class FuzzTarget:
    """One API: its base URL, its OpenAPI description and how to make an authorised session."""

    name: str
    base_url: str
    openapi: dict[str, Any]
    session_factory: Callable[[], requests.Session]
    #: 5xx codes the description may document (a documented 503 is an ordinary answer)
    documented_5xx: frozenset[int] = frozenset({503})
    #: operations to leave out, as "METHOD /path"
    exclude: frozenset[str] = field(default_factory=frozenset)
    #: generation modes; a description narrowed to reach deeper (fixed IDs) is positive only
    modes: tuple[str, ...] = ("positive", "negative")


def tls_session(ca: str, cert: str | None = None, key: str | None = None) -> requests.Session:
    """A requests session with the network CA and (optionally) a client certificate."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = ca
    if cert:
        session.cert = (cert, key)
    return session


def _documented_statuses(operation) -> set[str]:
    return {str(code) for code in operation.definition.raw.get("responses", {})}


def run_schema_fuzz(target: FuzzTarget, *, examples: int = 50, seed: int = 0,
                    max_failures: int = 50) -> dict[str, Any]:
    """Fuzz every operation of ``target`` with ``examples`` cases per generation mode."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_dict(target.openapi)
    session = target.session_factory()
    statuses: Counter[int] = Counter()
    per_operation: dict[str, int] = {}
    failures: list[dict[str, Any]] = []
    counts = {"cases": 0, "server_errors": 0, "schema_violations": 0, "transport_errors": 0}
    unsatisfiable: list[str] = []
    started = time.monotonic()
    last_call = [started]

    def record(kind: str, label: str, mode: str, detail: str, case) -> None:
        counts[kind] += 1
        if len(failures) < max_failures:
            failures.append({"kind": kind, "operation": label, "mode": mode,
                             "detail": detail[:500], "request": _describe(case)})

    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in target.exclude:
            continue
        documented = _documented_statuses(operation)
        for mode in target.modes:
            generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
            checks = [status_code_conformance, content_type_conformance,
                      response_schema_conformance]
            if mode == "negative":
                checks.append(negative_data_rejection)

            def make(label=label, mode=mode, checks=checks, documented=documented,
                     operation=operation, generation=generation):
                @hypothesis_seed(seed)
                @settings(max_examples=examples, database=None, deadline=None,
                          phases=[Phase.generate], suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=generation))
                def fuzz_one(case):
                    counts["cases"] += 1
                    per_operation[label] = per_operation.get(label, 0) + 1
                    if time.monotonic() - last_call[0] >= IDLE_REUSE_S:
                        # the server closes a keep-alive connection idle for its read
                        # deadline; one about to meet it is not reused (the pools refill)
                        session.close()
                    try:
                        response = case.call(base_url=target.base_url, session=session,
                                             timeout=REQUEST_TIMEOUT_S, verify=session.verify,
                                             cert=session.cert)
                    except requests.RequestException as exc:
                        record("transport_errors", label, mode, repr(exc), case)
                        return
                    finally:
                        last_call[0] = time.monotonic()   # the connection's idle time starts
                    code = response.status_code
                    statuses[code] += 1
                    if code >= 500 and not (code in target.documented_5xx
                                            and str(code) in documented):
                        record("server_errors", label, mode, f"{code}: {response.text[:300]}",
                               case)
                        return
                    active = checks
                    if code in (413, 414):   # refused for size: a rejection schemathesis's
                        # negative_data_rejection does not list (it expects 400, 422...)
                        active = [c for c in checks if c is not negative_data_rejection]
                    try:
                        case.validate_response(response, checks=active,
                                               transport_kwargs={"base_url": target.base_url})
                    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - a FailureGroup
                        record("schema_violations", label, mode,
                               f"{code}: {type(exc).__name__}: {exc}", case)
                return fuzz_one

            try:
                make()()
            except Unsatisfiable:
                # nothing of this mode can be generated (e.g. no invalid form of a path
                # parameter that still routes): noted, not a failure
                unsatisfiable.append(f"{label} {mode}")
    session.close()
    return {"api": target.name, **counts, "statuses": dict(sorted(statuses.items())),
            "cases_per_operation": per_operation, "unsatisfiable": unsatisfiable,
            "failures": failures,
            "seconds": round(time.monotonic() - started, 2)}


def _describe(case) -> dict[str, Any]:
    body = getattr(case, "body", None)
    text = repr(body)
    return {"method": case.method, "path": case.formatted_path,
            "query": repr(case.query)[:200], "body": text[:300]}


# -- raw garbage ---------------------------------------------------------------------------------

def garbage_requests(rng: random.Random, path: str) -> list[tuple[str, bytes]]:
    """Byte strings that are not valid HTTP/1.1 requests, or are valid but hostile."""
    junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400)))
    long_name = "X" * rng.randint(70_000, 120_000)
    return [
        ("random-bytes", junk),
        ("random-bytes-crlf", junk + b"\r\n\r\n"),
        ("bad-request-line", b"GARBAGE\r\n\r\n"),
        ("no-version", f"GET {path}\r\n\r\n".encode()),
        ("http-0.9", f"GET {path}\n".encode()),
        ("bad-version", f"GET {path} HTTP/9.9\r\nHost: x\r\n\r\n".encode()),
        ("nul-in-path", f"GET {path}\x00 HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
        ("bad-header", f"GET {path} HTTP/1.1\r\nHost x\r\n\r\n".encode()),
        ("header-continuation", f"GET {path} HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n".encode()),
        ("huge-header", f"GET {path} HTTP/1.1\r\nHost: x\r\nX-A: {long_name}\r\n\r\n".encode()),
        ("huge-uri", f"GET {path}?{long_name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
        ("negative-length", f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".encode()),
        ("non-numeric-length", f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".encode()),
        ("huge-length", f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"Content-Length: 99999999999\r\n\r\n{{}}".encode()),
        ("two-lengths", f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                        f"Content-Length: 3\r\n\r\n{{}}".encode()),
        ("bad-chunk-size", f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           f"\r\nzz\r\n{{}}\r\n0\r\n\r\n".encode()),
        ("chunk-overflow", f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           f"\r\nffffffffffffffffff\r\n{{}}\r\n0\r\n\r\n".encode()),
        ("truncated-chunks", f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             f"\r\n10\r\n{{}}".encode()),
        ("te-and-cl", f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      f"Content-Length: 5\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n".encode()),
        ("invalid-json", f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: 7\r\n\r\n{{\"a\":\xff".encode("latin-1")),
        ("deep-json", _json_post(path, "[" * 100_000 + "]" * 100_000)),
        ("huge-number", _json_post(path, '{"number": 1' + "0" * 5000 + "}")),
        ("many-keys", _json_post(path, "{" + ",".join(f'"k{i}":{i}' for i in range(20_000)) + "}")),
        ("body-too-large", _json_post(path, '{"pad": "' + "a" * (2 << 20) + '"}')),
        ("unknown-method", f"BREW {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
        ("absolute-uri", f"GET https://evil.example{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
        ("percent-garbage", f"GET {path}%zz%00%ff HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
    ]


def _json_post(path: str, text: str) -> bytes:
    body = text.encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def _status_of(reply: bytes) -> int | None:
    if not reply.startswith(b"HTTP/"):
        return None
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def send_raw(host: str, port: int, context: ssl.SSLContext, payload: bytes,
             timeout: float = 15, answer_wait: float = 1.5) -> tuple[int | str, float]:
    """Send ``payload`` over a fresh TLS connection; (HTTP status, or "closed" if the server
    closed without an answer, or "waiting" if it still waits for more bytes after
    ``answer_wait`` s, a request it cannot parse yet: the read deadline cuts those), seconds."""
    started = time.monotonic()
    outcome: int | str = "closed"
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError) as exc:
        # the server ended the connection during the handshake (a deadline cut it, or it
        # refused it): an outcome of its own, with the time it took, not a crash of the run
        raw.close()
        return f"handshake-failed {type(exc).__name__}", time.monotonic() - started
    with raw, tls:
        try:
            tls.sendall(payload)
        except OSError:
            pass  # the server may close before reading it all
        tls.settimeout(answer_wait)
        reply = b""
        try:
            while b"\r\n" not in reply:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except TimeoutError:
            outcome = "waiting"
        except (OSError, ssl.SSLError):
            pass
    status = _status_of(reply)
    return (status if status is not None else outcome), time.monotonic() - started


def run_raw_garbage(host: str, port: int, context: ssl.SSLContext, paths: list[str], *,
                    rounds: int = 3, seed: int = 0,
                    probe: Callable[[], bool] | None = None,
                    headers: dict[str, str] | None = None,
                    connections: int = 8) -> dict[str, Any]:
    """Send every garbage class to every path ``rounds`` times; no 5xx may come back and the
    ``probe`` (a well-formed request) must succeed after each round. ``headers`` (e.g. an
    ``Authorization``) are added after ``Host`` so that the garbage gets past authentication.
    A round's requests (drawn in order from ``seed``) go out over ``connections`` connections
    at once: a request the server waits on costs its ``answer_wait`` in parallel, not in turn."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()).encode()
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    server_errors: list[dict[str, Any]] = []
    handshake_failures: list[dict[str, Any]] = []
    probe_failures = 0
    cases = 0
    slowest = 0.0
    for _ in range(rounds):
        batch = [(kind, path, payload.replace(b"Host: x\r\n", b"Host: x\r\n" + extra, 1))
                 for path in paths for kind, payload in garbage_requests(rng, path)]
        with ThreadPoolExecutor(connections) as pool:
            answers = list(pool.map(lambda case: send_raw(host, port, context, case[2]), batch))
        for (kind, path, _payload), (status, seconds) in zip(batch, answers, strict=True):
            cases += 1
            slowest = max(slowest, seconds)
            outcomes[str(status)] += 1
            if isinstance(status, str) and status.startswith("handshake-failed"):
                handshake_failures.append({"kind": kind, "path": path, "error": status,
                                           "after_s": round(seconds, 3)})
            if isinstance(status, int) and status >= 500 and \
                    not (kind == "bad-version" and status == 505):  # RFC 9110 15.6.6
                server_errors.append({"kind": kind, "path": path, "status": status})
        if probe is not None and not probe():
            probe_failures += 1
    # plain-text HTTP and random bytes on the TLS port: closed without a TLS session
    plain = 0
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                    bytes(rng.getrandbits(8) for _ in range(512))):
        cases += 1
        with socket.create_connection((host, port), timeout=10) as raw:
            raw.sendall(payload)
            try:
                data = raw.recv(4096)
            except OSError:
                data = b""
            if _status_of(data) is None or (_status_of(data) or 0) < 500:
                plain += 1
    return {"cases": cases, "outcomes": dict(outcomes), "server_errors": server_errors,
            "handshake_failures": handshake_failures,
            "probe_failures": probe_failures, "plain_on_tls_refused": plain,
            "slowest_answer_s": round(slowest, 3)}


# -- slow clients --------------------------------------------------------------------------------

@dataclass
class SlowClient:
    """One hostile connection held open in a thread; ``closed_after`` once the server cut it."""

    kind: str
    closed_after: float | None = None
    error: str | None = None


def _hold(client: SlowClient, host: str, port: int, context: ssl.SSLContext, path: str,
          byte_interval: float, give_up: float) -> None:
    started = time.monotonic()
    try:
        raw = socket.create_connection((host, port), timeout=give_up)
        raw.settimeout(give_up)
        if client.kind == "silent-tcp":          # never sends a ClientHello
            raw.recv(1)
        elif client.kind == "slow-hello":        # ClientHello a byte at a time
            hello = _client_hello(context, host)
            for byte in hello:
                raw.sendall(bytes([byte]))
                time.sleep(byte_interval)
            raw.recv(1)
        else:
            tls = context.wrap_socket(raw, server_hostname=host)
            tls.settimeout(give_up)
            request = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       f"Content-Length: 1000\r\n\r\n").encode()
            if client.kind == "silent-tls":      # handshake, then nothing
                tls.recv(1)
            elif client.kind == "slow-headers":  # request head a byte at a time, for ever
                for byte in request * 1000:
                    tls.sendall(bytes([byte]))
                    time.sleep(byte_interval)
            elif client.kind == "slow-body":     # head at once, body a byte at a time
                tls.sendall(request)
                for _ in range(1000):
                    tls.sendall(b" ")
                    time.sleep(byte_interval)
            tls.recv(1)
        client.closed_after = time.monotonic() - started
    except (OSError, ssl.SSLError) as exc:
        elapsed = time.monotonic() - started
        if elapsed < give_up - 0.5:
            client.closed_after = elapsed     # reset / broken pipe: the server cut it
        else:
            client.error = repr(exc)


def _client_hello(context: ssl.SSLContext, host: str) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def run_slow_clients(host: str, port: int, context: ssl.SSLContext, path: str, *,
                     per_kind: int = 2, byte_interval: float = 0.5, give_up: float = 40,
                     probe: Callable[[], float] | None = None,
                     kinds: tuple[str, ...] = ("silent-tcp", "slow-hello", "silent-tls",
                                               "slow-headers", "slow-body")) -> dict[str, Any]:
    """Hold ``per_kind`` connections of each kind; measure when the server cuts each one, and
    the latency of ``probe`` (a normal request, in seconds) while they are held."""
    clients = [SlowClient(kind) for kind in kinds for _ in range(per_kind)]
    threads = [threading.Thread(target=_hold, args=(c, host, port, context, path, byte_interval,
                                                    give_up), daemon=True) for c in clients]
    for t in threads:
        t.start()
    time.sleep(1.0)
    probe_latencies = []
    if probe is not None:
        for _ in range(5):
            probe_latencies.append(probe())
            time.sleep(0.3)
    for t in threads:
        t.join(give_up + 5)
    closed = [c.closed_after for c in clients if c.closed_after is not None]
    by_kind: dict[str, float | None] = {}
    for c in clients:
        prev = by_kind.get(c.kind, 0.0)
        by_kind[c.kind] = None if c.closed_after is None or prev is None else max(prev, c.closed_after)
    return {"clients": len(clients), "closed": len(closed),
            "max_closed_after_s": round(max(closed), 2) if closed else None,
            "closed_after_s_by_kind": {k: (round(v, 2) if v is not None else None)
                                       for k, v in by_kind.items()},
            "errors": [c.error for c in clients if c.error],
            "probe_latency_max_s": round(max(probe_latencies), 3) if probe_latencies else None}
