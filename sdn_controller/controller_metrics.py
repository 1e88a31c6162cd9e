"""Prometheus metrics of the controller process (``qkdn controller``), on its own registry.

* ``qkdn_controller_netconf_rpc_seconds{node, operation, outcome}`` — southbound RPC latency
  (edit-config pushes, periodic get), measured around the ncclient call;
* ``qkdn_controller_notifications_total{node}`` — NETCONF notifications received per agent;
* ``qkdn_controller_events_total{kind}`` — controller events (session active/refused/
  terminated/rerouted, access denied, link alarms, orphans removed);
* read at scrape time: ``qkdn_controller_sessions{state}``,
  ``qkdn_controller_agents_connected`` / ``qkdn_controller_agents``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from qkdn.metrics import netconf_rpc_histogram, new_registry, operation_label
from sdn_controller.admission_control import SessionState
from sdn_controller.controller import ControllerEvent


class ControllerMetrics:
    """Counters and the RPC histogram; :meth:`bind` adds the scrape-time levels."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 names: Mapping[str, str] | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.names = dict(names or {})   # qkdn_id -> node name (labels read better)
        self.rpc_seconds = netconf_rpc_histogram(
            self.registry, "qkdn_controller_netconf_rpc_seconds", ("node", "operation", "outcome"))
        self.notifications = Counter("qkdn_controller_notifications",
                                     "NETCONF notifications received", ["node"],
                                     registry=self.registry)
        self.events = Counter("qkdn_controller_events", "Controller events", ["kind"],
                              registry=self.registry)

    def _node(self, node_id: str) -> str:
        return self.names.get(str(node_id), str(node_id))

    def observe_rpc(self, node_id: str, operation: str, seconds: float, ok: bool) -> None:
        self.rpc_seconds.labels(self._node(node_id), operation_label(operation),
                                "ok" if ok else "error").observe(seconds)

    def notification(self, node_id: str) -> None:
        self.notifications.labels(self._node(node_id)).inc()

    def event(self, event: ControllerEvent) -> None:
        self.events.labels(event.kind.value).inc()

    def bind(self, sessions: Callable[[], list[Any]], agents: Callable[[], Mapping[str, Any]]
             ) -> None:
        """Register the collector of session states (``sessions()`` → views with ``state``)
        and agent connections (``agents()`` → objects with ``connected``)."""
        self.registry.register(_LevelCollector(sessions, agents))


class _LevelCollector(Collector):
    def __init__(self, sessions: Callable[[], list[Any]],
                 agents: Callable[[], Mapping[str, Any]]) -> None:
        self._sessions = sessions
        self._agents = agents

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        counts = {state: 0 for state in SessionState}
        for _ in range(3):  # the control loop may change the table while we read it
            try:
                views = self._sessions()
                break
            except RuntimeError:
                continue
        else:
            views = []
        for view in views:
            counts[view.state] = counts.get(view.state, 0) + 1
        family = GaugeMetricFamily("qkdn_controller_sessions",
                                   "Controller sessions by state (terminated ones still held)",
                                   labels=["state"])
        for state, count in counts.items():
            family.add_metric([state.value], count)
        yield family
        agents = dict(self._agents())
        connected = GaugeMetricFamily("qkdn_controller_agents_connected",
                                      "Agents with a live NETCONF session")
        connected.add_metric([], sum(1 for a in agents.values() if a.connected))
        total = GaugeMetricFamily("qkdn_controller_agents", "Agents the controller manages")
        total.add_metric([], len(agents))
        yield connected
        yield total
