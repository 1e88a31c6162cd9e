"""RFC 5277 event notifications: building validated ``<notification>`` messages and fanning
them out to the sessions that subscribed.

A notification enters as RFC 7951 JSON (``{"etsi-qkd-sdn-node:sdqkdn_link_down": {...}}``),
is validated against the YANG modules with libyang (an invalid one never reaches a client)
and rendered to XML once; every subscribed session then receives it stamped with the same
``eventTime``. Only the default ``NETCONF`` stream exists; replay is not offered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import libyang
from lxml import etree

from qkdn.errors import QkdnError
from qkdn.namespaces import NETCONF_NOTIFICATION_NS

log = logging.getLogger(__name__)

#: The one event stream (RFC 5277 §3.2.5.1).
DEFAULT_STREAM = "NETCONF"


class InvalidNotification(QkdnError):
    """A notification body that does not validate against the YANG modules."""


def render_notification_body(ctx: libyang.Context, payload: dict) -> etree._Element:
    """Validate an RFC 7951 JSON notification with libyang and return its XML element."""
    if not isinstance(payload, dict) or len(payload) != 1:
        raise InvalidNotification("a notification is one object with a single top-level member")
    try:
        node = ctx.parse_op_mem("json", json.dumps(payload), libyang.DataType.NOTIF_YANG)
    except libyang.LibyangError as exc:
        raise InvalidNotification(f"notification does not validate: {exc}") from exc
    try:
        xml = node.print_mem("xml", pretty=False)
    finally:
        node.free()
    return etree.fromstring(xml.encode())


def format_event_time(moment: datetime) -> str:
    """RFC 3339 ``date-and-time`` in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_notification(body: etree._Element, event_time: datetime) -> bytes:
    """The complete ``<notification>`` message (RFC 5277 §4)."""
    # The body is serialised on its own and wrapped as text: appending it to a new parent
    # would let lxml drop namespace declarations that look redundant for element names but
    # that identityref values use (<alarm_type xmlns:qkdn-inv="...">qkdn-inv:QBER-HIGH</...>
    # inside <alarm xmlns="..."> of the same module).
    return (b"<?xml version='1.0' encoding='UTF-8'?>\n"
            b'<notification xmlns="' + NETCONF_NOTIFICATION_NS.encode() + b'"><eventTime>'
            + format_event_time(event_time).encode() + b"</eventTime>"
            + etree.tostring(body)  # ASCII with character references, no declaration
            + b"</notification>")


def event_matches_filter(filter_elem: etree._Element | None, event: etree._Element) -> bool:
    """RFC 6241 §6 subtree filter applied to one event: true when the filter selects any part
    of it. A filter element matches a same-named event element when all its content-match
    leaves are equal and all its containment children match recursively."""
    if filter_elem is None:
        return True
    children = [c for c in filter_elem if isinstance(c.tag, str)]
    if not children:
        return True
    return any(_node_matches(f, event) for f in children)


def _node_matches(f: etree._Element, node: etree._Element) -> bool:
    if _local_qname(f) != _local_qname(node):
        return False
    f_children = [c for c in f if isinstance(c.tag, str)]
    if not f_children:
        text = (f.text or "").strip()
        return not text or text == (node.text or "").strip()
    node_children = [c for c in node if isinstance(c.tag, str)]
    return all(any(_node_matches(fc, nc) for nc in node_children) for fc in f_children)


def _local_qname(elem: etree._Element) -> tuple[str | None, str]:
    q = etree.QName(elem)
    return q.namespace, q.localname


@dataclass
class Subscription:
    """One session's RFC 5277 subscription."""

    session_id: int
    deliver: Callable[[bytes], None]
    filter: etree._Element | None = None


class NotificationHub:
    """Subscriptions of all sessions; ``publish`` runs on the agent's event loop."""

    def __init__(self) -> None:
        self._subscriptions: dict[int, Subscription] = {}

    def subscribe(self, subscription: Subscription) -> None:
        self._subscriptions[subscription.session_id] = subscription

    def is_subscribed(self, session_id: int) -> bool:
        return session_id in self._subscriptions

    def unsubscribe(self, session_id: int) -> None:
        self._subscriptions.pop(session_id, None)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def publish(self, body: etree._Element, event_time: datetime) -> int:
        """Send one event to every matching subscriber; the number of sessions reached."""
        message = build_notification(body, event_time)
        sent = 0
        for sub in list(self._subscriptions.values()):
            if not event_matches_filter(sub.filter, body):
                continue
            try:
                sub.deliver(message)
                sent += 1
            except Exception:  # a broken session must not stop the others
                log.exception("dropping subscription of session %d", sub.session_id)
                self.unsubscribe(sub.session_id)
        return sent
