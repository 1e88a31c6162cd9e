"""Prometheus metrics of the orchestrator (``/metrics``), in a registry of its own per app."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class OrchestratorMetrics:
    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    events: Counter
    controller_up: Gauge
    streams: Gauge
    nbi_failures: Counter


def create_metrics() -> OrchestratorMetrics:
    registry = CollectorRegistry()
    return OrchestratorMetrics(
        registry=registry,
        requests=Counter("qkdn_orchestrator_requests_total",
                         "REST requests by method, route and status",
                         ["method", "route", "status"], registry=registry),
        request_seconds=Histogram("qkdn_orchestrator_request_seconds",
                                  "REST request latency by route", ["route"],
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                  registry=registry),
        events=Counter("qkdn_orchestrator_events_total",
                       "controller notifications received, by type", ["type"],
                       registry=registry),
        controller_up=Gauge("qkdn_orchestrator_controller_subscribed",
                            "1 while the notification subscription to the controller is live",
                            registry=registry),
        streams=Gauge("qkdn_orchestrator_event_streams", "open server-sent event streams",
                      registry=registry),
        nbi_failures=Counter("qkdn_orchestrator_controller_failures_total",
                             "NETCONF requests to the controller that failed (transport)",
                             registry=registry),
    )
