"""Controller metrics without sockets."""

from __future__ import annotations

from types import SimpleNamespace

from qkdn.metrics import render, sample_value
from sdn_controller.admission_control import SessionState
from sdn_controller.controller import ControllerEvent, EventKind
from sdn_controller.controller_metrics import ControllerMetrics


def test_controller_metrics():
    metrics = ControllerMetrics(names={"id-0": "0"})
    views = [SimpleNamespace(state=SessionState.ACTIVE), SimpleNamespace(state=SessionState.ACTIVE),
             SimpleNamespace(state=SessionState.ACCEPTED)]
    agents = {"id-0": SimpleNamespace(connected=True), "id-1": SimpleNamespace(connected=False)}
    metrics.bind(lambda: views, lambda: agents)
    metrics.observe_rpc("id-0", "edit-config", 0.012, True)
    metrics.observe_rpc("id-1", "get", 0.5, False)
    metrics.notification("id-0")
    metrics.event(ControllerEvent(EventKind.SESSION_ACTIVE, 1.0, "s"))
    text = render(metrics.registry)
    assert sample_value(text, "qkdn_controller_netconf_rpc_seconds_count", node="0",
                        operation="edit-config", outcome="ok") == 1
    assert sample_value(text, "qkdn_controller_netconf_rpc_seconds_count", node="id-1",
                        operation="get", outcome="error") == 1
    assert sample_value(text, "qkdn_controller_notifications_total", node="0") == 1
    assert sample_value(text, "qkdn_controller_events_total", kind="session-active") == 1
    assert sample_value(text, "qkdn_controller_sessions", state="active") == 2
    assert sample_value(text, "qkdn_controller_sessions", state="terminated") == 0
    assert sample_value(text, "qkdn_controller_agents_connected") == 1
    assert sample_value(text, "qkdn_controller_agents") == 2


def test_a_table_changing_during_the_scrape_is_retried():
    metrics = ControllerMetrics()
    calls = []

    def sessions():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("dictionary changed size during iteration")
        return [SimpleNamespace(state=SessionState.ACTIVE)]

    metrics.bind(sessions, dict)
    assert sample_value(render(metrics.registry), "qkdn_controller_sessions",
                        state="active") == 1
