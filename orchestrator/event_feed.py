"""From the controller's notifications to the event log: parse, validate, record."""

from __future__ import annotations

import logging

from lxml import etree

from orchestrator.errors import OrchestratorError
from orchestrator.event_log import EventLog
from orchestrator.metrics import OrchestratorMetrics
from orchestrator.nbi_data import NbiModel

log = logging.getLogger(__name__)


class NotificationRecorder:
    """Callable for :class:`~orchestrator.nbi_client.NotificationListener`: one
    ``<notification>`` → one event (type = the notification's YANG name)."""

    def __init__(self, model: NbiModel, events: EventLog,
                 metrics: OrchestratorMetrics | None = None) -> None:
        self.model = model
        self.events = events
        self.metrics = metrics
        self.rejected = 0

    def __call__(self, message: etree._Element) -> None:
        try:
            name, event_time, data = self.model.notification_to_json(message)
        except OrchestratorError as exc:
            self.rejected += 1
            log.warning("notification dropped: %s", exc.detail)
            return
        self.events.append(name, data, event_time)
        if self.metrics is not None:
            self.metrics.events.labels(name).inc()

    def on_state(self, connected: bool, why: str) -> None:
        """Subscription state changes become events too (the dashboard shows them)."""
        if connected != getattr(self, "_connected", None):
            self._connected = connected
            self.events.append("controller_connection",
                               {"subscribed": connected, "reason": why})
