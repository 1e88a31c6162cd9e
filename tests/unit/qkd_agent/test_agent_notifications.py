"""RFC 5277 notifications: libyang validation, message shape, subscription filters, fan-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from qkd_agent.notifications import (
    InvalidNotification,
    NotificationHub,
    Subscription,
    build_notification,
    event_matches_filter,
    format_event_time,
    render_notification_body,
)
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, NETCONF_NOTIFICATION_NS

LINK = "33333333-3333-4333-8333-333333333333"
N = f"{{{ETSI_NODE_NS}}}"


@pytest.fixture(scope="module")
def ctx():
    return load_context()


def test_etsi_notification_renders_to_xml(ctx):
    body = render_notification_body(ctx, {"etsi-qkd-sdn-node:sdqkdn_link_perf_update": {
        "qkd_link": {"qkdl_id": LINK, "performance": {"skr": 1000, "eskr": 900}}}})
    assert body.tag == N + "sdqkdn_link_perf_update"
    assert body.findtext(f"{N}qkd_link/{N}qkdl_id") == LINK
    assert body.findtext(f".//{N}skr") == "1000"


@pytest.mark.parametrize(
    "payload",
    [
        {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {"qkdl_id": "not-a-uuid"}}},
        {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {"bogus": 1}}},
        {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": LINK}},  # data, not a notification
        {"etsi-qkd-sdn-node:nope": {}},
        {},
        {"a:b": {}, "c:d": {}},
        ["etsi-qkd-sdn-node:sdqkdn_link_down"],
    ],
)
def test_invalid_notifications_are_refused(ctx, payload):
    with pytest.raises(InvalidNotification):
        render_notification_body(ctx, payload)


def test_event_time_is_utc_rfc3339():
    moment = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_event_time(moment) == "2025-06-01T10:00:00.123456Z"


def test_notification_message_shape():
    body = etree.fromstring(b'<ev xmlns="urn:x"/>')
    root = etree.fromstring(build_notification(body, datetime(2025, 1, 1, tzinfo=UTC)))
    assert root.tag == f"{{{NETCONF_NOTIFICATION_NS}}}notification"
    assert [etree.QName(c).localname for c in root] == ["eventTime", "ev"]


@pytest.mark.parametrize(
    ("flt", "matches"),
    [
        (None, True),
        ("<filter/>", True),
        ('<filter><ev xmlns="urn:x"/></filter>', True),
        ('<filter><ev xmlns="urn:y"/></filter>', False),
        ('<filter><other xmlns="urn:x"/></filter>', False),
        ('<filter><ev xmlns="urn:x"><link><id>1</id></link></ev></filter>', True),
        ('<filter><ev xmlns="urn:x"><link><id>2</id></link></ev></filter>', False),
        ('<filter><ev xmlns="urn:x"><link><state/></link></ev></filter>', False),
        ('<filter><other xmlns="urn:x"/><ev xmlns="urn:x"/></filter>', True),
    ],
)
def test_subtree_filter_on_events(flt, matches):
    event = etree.fromstring(b'<ev xmlns="urn:x"><link><id>1</id><reason>cut</reason></link></ev>')
    assert event_matches_filter(etree.fromstring(flt) if flt else None, event) is matches


def test_hub_delivers_to_matching_subscribers_and_drops_broken_ones():
    hub = NotificationHub()
    got: dict[int, list[bytes]] = {1: [], 2: []}
    hub.subscribe(Subscription(1, got[1].append))
    hub.subscribe(Subscription(2, got[2].append, etree.fromstring('<f><nope xmlns="urn:x"/></f>')))

    def broken(message: bytes) -> None:
        raise OSError("gone")

    hub.subscribe(Subscription(3, broken))
    sent = hub.publish(etree.fromstring(b'<ev xmlns="urn:x"/>'), datetime.now(UTC))
    assert sent == 1 and len(got[1]) == 1 and got[2] == []
    assert not hub.is_subscribed(3) and hub.subscriber_count == 2
    hub.unsubscribe(1)
    assert hub.publish(etree.fromstring(b'<ev xmlns="urn:x"/>'), datetime.now(UTC)) == 0
