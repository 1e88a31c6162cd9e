"""ETSI 015 payloads built from module events."""

from __future__ import annotations

import json

import pytest

from qkd_twin.link_notifications import (
    link_operational_json,
    link_perf_update,
    notifications_for,
)
from qkd_twin.module import LinkEvent, LinkEventKind, LinkState, LinkStatus

LINK = "550e8400-e29b-41d4-a716-446655440000"
STATE = LinkState(LinkStatus.ACTIVE, 5.2e6, 4.9e6, 0.01234, 9)


def test_twin_perf_update_payload():
    assert link_perf_update(LINK, STATE) == {"etsi-qkd-sdn-node:sdqkdn_link_perf_update": {
        "qkd_link": {"qkdl_id": LINK, "performance": {
            "skr": 5_200_000, "eskr": 4_900_000,
            "phys_perf": [{"perf_type": "etsi-qkd-node-types:QBER", "value": "0.012"}]}}}}


def test_twin_operational_json_clamps_uint32():
    big = LinkState(LinkStatus.PASSIVE, 9e9, -1, 0.5)
    data = link_operational_json(LINK, big)
    assert data["qkdl_status"] == "etsi-qkd-node-types:PASSIVE"
    assert data["qkdl_performance"]["skr"] == 2**32 - 1
    assert data["qkdl_performance"]["eskr"] == 0


@pytest.mark.parametrize("kind, names", [
    (LinkEventKind.PERF_UPDATE, ["sdqkdn_link_perf_update"]),
    (LinkEventKind.LINK_DOWN, ["sdqkdn_link_down", "alarm"]),
    (LinkEventKind.BLOCK_ABORTED, ["alarm"]),
    (LinkEventKind.QBER_ALARM, ["alarm"]),
    (LinkEventKind.LINK_UP, ["event"]),
])
def test_twin_notifications_for_events(kind, names):
    payloads = notifications_for(LinkEvent(kind, LINK, 9, STATE, "why"))
    assert [next(iter(p)).split(":")[1] for p in payloads] == names


def test_twin_notifications_validate_against_yang():
    libyang = pytest.importorskip("libyang")
    from qkdn.namespaces import YANG_DIR
    if not (YANG_DIR / "etsi-qkd-sdn-node.yang").exists():
        pytest.skip("yang/ not in this checkout")
    ctx = libyang.Context(str(YANG_DIR))
    ctx.load_module("etsi-qkd-node-types")
    ctx.load_module("etsi-qkd-sdn-node")
    for kind in LinkEventKind:
        for payload in notifications_for(LinkEvent(kind, LINK, 9, STATE, "msg")):
            ctx.parse_op_mem("json", json.dumps(payload), libyang.DataType.NOTIF_YANG)
