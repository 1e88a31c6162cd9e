"""Prometheus metrics shared by every qkdn process: per-process registries, the plain-HTTP
``/metrics`` server on loopback, and the NETCONF RPC latency histogram.

Each process (node, controller, orchestrator) builds its own registry with
:func:`new_registry` — never prometheus-client's global default — so several KMs can live in
one test process. Levels are read at scrape time by collectors; counters are bumped where
things happen. See ``docs/observability.md`` for every metric's name and labels.

>>> registry = new_registry()
>>> hist = netconf_rpc_histogram(registry, "qkdn_netconf_rpc_seconds", ("operation",))
>>> hist.labels("get").observe(0.004)
>>> sample_value(render(registry), "qkdn_netconf_rpc_seconds_count", operation="get")
1.0
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Self

from prometheus_client import CollectorRegistry, Histogram, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

#: Seconds: loopback NETCONF RPCs take 1–50 ms; a slow edit-config under load up to seconds.
RPC_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                       10.0)

#: Content type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


#: NETCONF operations that get their own label value; anything else is ``other`` (a client
#: must not be able to grow the label set without bound).
NETCONF_OPERATIONS = frozenset({
    "get", "get-config", "edit-config", "copy-config", "delete-config", "lock", "unlock",
    "close-session", "kill-session", "validate", "commit", "discard-changes",
    "cancel-commit", "create-subscription", "get-schema",
})


def operation_label(name: str) -> str:
    """``name`` if it is a NETCONF operation of :data:`NETCONF_OPERATIONS`, else ``other``.

    >>> operation_label("edit-config"), operation_label("x" * 60)
    ('edit-config', 'other')
    """
    return name if name in NETCONF_OPERATIONS else "other"


def new_registry() -> CollectorRegistry:
    """A registry of this process's (or this component's) own metrics."""
    return CollectorRegistry(auto_describe=True)


def netconf_rpc_histogram(registry: CollectorRegistry, name: str,
                          labels: Sequence[str]) -> Histogram:
    """A histogram of NETCONF RPC durations (seconds) with the shared buckets."""
    return Histogram(name, "NETCONF RPC duration in seconds", list(labels),
                     registry=registry, buckets=RPC_LATENCY_BUCKETS)


def render(registry: CollectorRegistry) -> str:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(registry).decode()


def exposition(registry: CollectorRegistry) -> tuple[bytes, int, dict[str, str]]:
    """``(body, status, headers)`` of a ``/metrics`` answer, for a route of an existing
    Flask app (``return exposition(registry)``) when a process already serves HTTP."""
    return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE}


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """``(name, labels, value)`` of every sample of an exposition text."""
    return [(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def sample_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (None if absent).

    Several matching samples are summed (e.g. a counter asked for by one of its labels)."""
    found = [value for sample, sample_labels, value in parse_samples(text)
             if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None


class MetricsServer:
    """``GET /metrics`` of ``registry`` over plain HTTP (default 127.0.0.1, port 0 =
    ephemeral) in a daemon thread; a context manager.

    A port that cannot be bound (a recorded port now taken) falls back to an ephemeral one
    when ``fallback_to_ephemeral`` is set, so a restarted process always serves metrics."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0, *,
                 fallback_to_ephemeral: bool = True) -> None:
        self.registry = registry
        self.host = host
        self._port = port
        self._fallback = fallback_to_ephemeral
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        try:
            self._server, self._thread = start_http_server(self._port, self.host, self.registry)
        except OSError:
            if not self._fallback or self._port == 0:
                raise
            self._server, self._thread = start_http_server(0, self.host, self.registry)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "metrics server not started"
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The scrape URL (``http://host:port/metrics``)."""
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
