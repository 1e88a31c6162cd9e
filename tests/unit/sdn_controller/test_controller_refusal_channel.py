"""Refusals to a waiting KM: km_refusals payloads (validated against yang/), retention, and
the NETCONF KmSignals that sends them (no sockets)."""

from __future__ import annotations

import copy
from concurrent.futures import Future
from pathlib import Path

import libyang
import pytest
from lxml import etree

from qkdn.namespaces import NETCONF_BASE_NS
from sdn_controller.config_payloads import orphan_delete_payload, refusal_payload
from sdn_controller.refusal_channel import (
    NetconfRefusals,
    SessionRefusal,
    date_and_time,
    stale_refusal_ids,
)
from sdn_controller.session_config import QoS

YANG = Path(__file__).resolve().parents[3] / "yang"
NODE = "00000000-0000-4000-8000-000000000001"
REQUEST = "0e0e0e0e-0000-4000-8000-000000000001"
SESSION = "5e55105e-0000-4000-8000-000000000001"
KM = "urn:qkdn:yang:qkdn-key-manager"


@pytest.fixture(scope="module")
def ctx():
    context = libyang.Context(str(YANG))
    for file in sorted(YANG.glob("*.yang")):
        context.load_module(file.stem).feature_enable_all()
    yield context
    context.destroy()


def validate(ctx, payload):
    body = copy.deepcopy(payload[0])
    for element in body.iter():
        element.attrib.pop(f"{{{NETCONF_BASE_NS}}}operation", None)
    tree = ctx.parse_data_mem(etree.tostring(body, encoding="unicode"), "xml", no_state=True,
                              strict=True, validate_present=True)
    tree.free()


def km(payload, path):
    return payload.xpath(path, namespaces={"km": KM})


def test_qos_refusal_carries_status_7_and_the_counter_proposal(ctx):
    refusal = SessionRefusal("sae-a", "sae-b", SESSION, 7, "qos-above-sla",
                             "max_bps 5000 > 1000", QoS(max_bps=1000, min_bps=500, priority=5),
                             request_id=REQUEST)
    payload = refusal_payload(NODE, refusal, refused_at=date_and_time(1.5))
    validate(ctx, payload)
    assert km(payload, "//km:refusal/km:request_id/text()") == [REQUEST]
    assert km(payload, "//km:etsi004_status/text()") == ["7"]
    assert km(payload, "//km:access_denied/text()") == ["false"]
    assert km(payload, "//km:counter_proposal/km:max_bps/text()") == ["1000"]
    assert km(payload, "//km:refused_at/text()") == ["1970-01-01T00:00:01.500Z"]
    (entry,) = km(payload, "//km:refusal")
    assert entry.get(f"{{{NETCONF_BASE_NS}}}operation") == "replace"


def test_access_refusal_without_request_id_gets_a_stable_derived_key(ctx):
    refusal = SessionRefusal("sae-x", "sae-b", None, 4, "unknown-application",
                             access_denied=True)
    payload = refusal_payload(NODE, refusal, refused_at=date_and_time(0))
    validate(ctx, payload)
    assert km(payload, "//km:access_denied/text()") == ["true"]
    assert not km(payload, "//km:app_id")
    assert refusal.entry_id(NODE) == refusal.entry_id(NODE) != refusal.entry_id("other")


def test_a_status_outside_004s_codes_is_invalid(ctx):
    payload = refusal_payload(NODE, SessionRefusal("a", "b", None, 9, "x", request_id=REQUEST),
                              refused_at=date_and_time(0))
    with pytest.raises(libyang.LibyangError):
        validate(ctx, payload)


def test_orphan_payload_deletes_stale_refusals(ctx):
    payload = orphan_delete_payload(NODE, [], [], [REQUEST])
    (entry,) = km(payload, "//km:refusal")
    assert entry.get(f"{{{NETCONF_BASE_NS}}}operation") == "remove"


def test_stale_refusal_ids_by_age():
    node = {"km_refusals": {"refusal": [
        {"request_id": "old", "refused_at": date_and_time(100.0)},
        {"request_id": "new", "refused_at": date_and_time(125.0)},
        {"request_id": "unreadable", "refused_at": "yesterday"}]}}
    assert stale_refusal_ids(node, now=131.0, retention_s=30) == ["old", "unreadable"]
    assert stale_refusal_ids({}, now=0) == []


class Recorder:
    def __init__(self, fail=False):
        self.sent, self.fail = [], fail

    def edit_config(self, config):
        if self.fail:
            raise RuntimeError("session lost")
        self.sent.append(config)


class InlineExecutor:
    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future


def test_netconf_refusals_send_to_the_node_and_record():
    node = Recorder()
    recorded = []
    channel = NetconfRefusals({NODE: node}, InlineExecutor(), clock=lambda: 0.0,
                              record=lambda n, r: recorded.append((n, r.reason)))
    channel.refuse(NODE, SessionRefusal("sae-a", "sae-b", None, 4, "user-revoked",
                                        access_denied=True, request_id=REQUEST))
    (payload,) = node.sent
    assert km(payload, "//km:reason/text()") == ["user-revoked"]
    assert recorded == [(NODE, "user-revoked")]
    # a node that cannot be reached: recorded, not raised (the KM times out by itself)
    NetconfRefusals({NODE: Recorder(fail=True)}, InlineExecutor(), clock=lambda: 0.0).refuse(
        NODE, SessionRefusal("sae-a", "sae-b", None, 4, "no-path", request_id=REQUEST))
    NetconfRefusals({}, InlineExecutor(), clock=lambda: 0.0).refuse(
        NODE, SessionRefusal("sae-a", "sae-b", None, 4, "no-path", request_id=REQUEST))


def test_a_close_is_not_sent_as_a_refusal():
    node = Recorder()
    NetconfRefusals({NODE: node}, InlineExecutor(), clock=lambda: 0.0).refuse(
        NODE, SessionRefusal("sae-a", "sae-b", SESSION, 0, "closed", request_id=REQUEST))
    assert node.sent == []
