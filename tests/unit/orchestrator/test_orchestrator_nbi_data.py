"""Controller replies and notifications → the orchestrator's JSON (libyang, no sockets)."""

from __future__ import annotations

import pytest
from lxml import etree

from orchestrator.errors import ControllerUnavailable
from orchestrator.nbi_data import NbiModel, parse_event_time

TOPO = "urn:qkdn:yang:qkdn-sdn-topology"
INV = "urn:qkdn:yang:qkdn-sdn-inventory"
TYPES = "urn:etsi:qkd:yang:etsi-qkd-node-types"
LINK = "11111111-1111-4111-8111-111111111111"
NODE_A = "00000000-0000-4000-8000-000000000000"
NODE_B = "00000001-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def model() -> NbiModel:
    return NbiModel()


def test_get_reply_to_plain_json(model: NbiModel) -> None:
    reply = etree.fromstring(f"""
      <data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
      <qkd_network xmlns="{TOPO}" xmlns:t="{TYPES}"><qkd_links><phys_links><phys_link>
        <qkdl_id>{LINK}</qkdl_id>
        <qkdl_local><qkdn_id>{NODE_A}</qkdn_id></qkdl_local>
        <qkdl_remote><qkdn_id>{NODE_B}</qkdn_id></qkdl_remote>
        <qkdl_status>t:ACTIVE</qkdl_status>
        <phys_link_details xmlns="{INV}"><qkdl_enable>true</qkdl_enable>
          <qkdl_performance><skr>120000</skr>
            <phys_perf><perf_type>t:QBER</perf_type><value>0.021</value></phys_perf>
            <key_store><stored_key_bits>524288</stored_key_bits></key_store>
          </qkdl_performance></phys_link_details>
      </phys_link></phys_links></qkd_links></qkd_network></data>""")
    data = model.data_to_json(list(reply))
    link = data["qkd_network"]["qkd_links"]["phys_links"]["phys_link"][0]
    assert link == {
        "qkdl_id": LINK, "qkdl_local": {"qkdn_id": NODE_A}, "qkdl_remote": {"qkdn_id": NODE_B},
        "qkdl_status": "ACTIVE",
        "phys_link_details": {"qkdl_enable": True, "qkdl_performance": {
            "skr": 120000, "phys_perf": [{"perf_type": "QBER", "value": 0.021}],
            "key_store": {"stored_key_bits": 524288}}}}
    assert model.data_to_json([]) == {}


def test_a_reply_the_model_rejects_is_a_controller_fault(model: NbiModel) -> None:
    bad = etree.fromstring(f'<qkd_network xmlns="{TOPO}"><colour>red</colour></qkd_network>')
    with pytest.raises(ControllerUnavailable):
        model.data_to_json([bad])


def test_notification_to_event(model: NbiModel) -> None:
    message = etree.fromstring(f"""
      <notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">
        <eventTime>2026-11-27T03:10:00.25Z</eventTime>
        <alarm xmlns="{INV}" xmlns:i="{INV}" xmlns:t="{TYPES}">
          <alarm_type>i:QBER-HIGH</alarm_type><severity>t:MAJOR</severity>
          <phys_link><qkdl_id>{LINK}</qkdl_id></phys_link>
          <message>QBER 0.160 above 0.110: possible eavesdropping</message>
        </alarm></notification>""")
    name, when, body = model.notification_to_json(message)
    assert name == "alarm" and when is not None and when.microsecond == 250000
    assert body == {"alarm_type": "QBER-HIGH", "severity": "MAJOR",
                    "phys_link": {"qkdl_id": LINK},
                    "message": "QBER 0.160 above 0.110: possible eavesdropping"}
    with pytest.raises(ControllerUnavailable):
        model.notification_to_json(etree.fromstring(
            '<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
            '<eventTime>2026-11-27T03:10:00Z</eventTime><bogus xmlns="urn:x"/></notification>'))


def test_rpc_output(model: NbiModel) -> None:
    reply = etree.fromstring(
        f'<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><paths xmlns="{INV}">'
        f'<path><path_index>0</path_index><hop><hop_index>0</hop_index>'
        f'<qkdn_id>{NODE_A}</qkdn_id><phys_link>{LINK}</phys_link></hop>'
        f'<hop><hop_index>1</hop_index><qkdn_id>{NODE_B}</qkdn_id></hop></path></paths>'
        '</rpc-reply>')
    out = model.rpc_output_to_json("restore_svc_link", INV, reply)
    assert out["paths"]["path"][0]["hop"][1] == {"hop_index": 1, "qkdn_id": NODE_B}


def test_event_times() -> None:
    assert parse_event_time("2026-11-27T03:10:00.123456789Z").microsecond == 123456
    assert parse_event_time("2026-11-27T03:10:00+01:00").utcoffset().seconds == 3600
    assert parse_event_time("yesterday") is None and parse_event_time("") is None


def test_rpc_output_with_a_prefixed_namespace(model: NbiModel) -> None:
    """The controller's server writes the output with a generated prefix (ns0:paths)."""
    reply = etree.fromstring(
        '<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
        f'<ns0:paths xmlns:ns0="{INV}"><ns0:path><ns0:path_index>0</ns0:path_index>'
        f'<ns0:hop><ns0:hop_index>0</ns0:hop_index><ns0:qkdn_id>{NODE_A}</ns0:qkdn_id>'
        '</ns0:hop></ns0:path></ns0:paths></rpc-reply>')
    out = model.rpc_output_to_json("restore_svc_link", INV, reply)
    assert out == {"paths": {"path": [{"path_index": 0, "hop": [
        {"hop_index": 0, "qkdn_id": NODE_A}]}]}}
