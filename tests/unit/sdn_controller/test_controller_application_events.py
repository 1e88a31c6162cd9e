import pytest

from sdn_controller.application_events import (
    ApplicationClosed,
    ApplicationQosUpdate,
    ApplicationRequest,
    KeyRequestEvent,
    KmSessionStateEvent,
    application_event,
)
from sdn_controller.errors import TopologyDataError

E = "urn:etsi:qkd:yang:etsi-qkd-node"
KM = "urn:qkdn:yang:qkdn-key-manager"
SID = "5e55105e-0000-4000-8000-000000000001"


def wrap(inner):
    return ('<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
            '<eventTime>2026-11-27T03:00:00Z</eventTime>' + inner + '</notification>')


def test_application_new_xml_with_km_request():
    event = application_event(wrap(f"""
      <sdqkdn_application_new xmlns="{E}"><qkd_application>
        <app_type xmlns:t="urn:etsi:qkd:yang:etsi-qkd-node-types">t:CLIENT</app_type>
        <server_app_id>sae-2</server_app_id><client_app_id>sae-3</client_app_id>
        <app_priority>4</app_priority><local_qkdn_id>spoofed</local_qkdn_id>
        <app_qos><max_bandwidth>9000</max_bandwidth><min_bandwidth>100</min_bandwidth>
          <jitter>5</jitter><ttl>60</ttl></app_qos>
        <km_request xmlns="{KM}"><authenticated_sae_id>sae-2</authenticated_sae_id>
          <application_interface>etsi-004</application_interface>
          <key_stream_id>{SID}</key_stream_id>
          <etsi004_qos><key_chunk_size>32</key_chunk_size></etsi004_qos></km_request>
      </qkd_application></sdqkdn_application_new>"""), node_id="node-2")
    assert isinstance(event, ApplicationRequest)
    assert event.node_id == "node-2"  # the agent session, never the claimed local_qkdn_id
    assert (event.sae_id, event.peer_sae_id, event.session_id) == ("sae-2", "sae-3", SID)
    q = event.qos
    assert (q.max_bps, q.min_bps, q.priority, q.jitter_ms, q.ttl_s, q.key_chunk_size) == \
        (9000, 100, 4, 5, 60, 32)
    assert event.interface == "etsi-004"


def test_verified_identity_wins_over_the_claim():
    event = application_event({"etsi-qkd-sdn-node:sdqkdn_application_new": {
        "qkd_application": {"server_app_id": "sae-admin", "client_app_id": ["sae-3"],
                            "qkdn-key-manager:km_request": {"authenticated_sae_id": "sae-2"}}}},
        node_id="n")
    assert event.sae_id == "sae-2" and event.claimed_sae_id == "sae-admin"
    assert event.qos.max_bps == 0 and event.session_id is None


def test_other_events():
    assert application_event({"etsi-qkd-sdn-node:sdqkdn_application_disconnected": {
        "qkd_application": {"app_id": SID}}}, node_id="n") == ApplicationClosed("n", SID)
    update = application_event({"etsi-qkd-sdn-node:sdqkdn_application_qos_update": {
        "qkd_application": {"app_id": SID, "app_priority": 2,
                            "app_qos": {"max_bandwidth": 5}}}}, node_id="n")
    assert isinstance(update, ApplicationQosUpdate) and update.qos.max_bps == 5
    assert application_event(wrap(
        f'<km_key_request xmlns="{KM}"><app_id>{SID}</app_id><bits>512</bits>'
        '<outcome>delivered</outcome></km_key_request>'), node_id="n") == \
        KeyRequestEvent("n", SID, "delivered", 512)
    assert application_event({"qkdn-key-manager:km_session_state_change": {
        "app_id": SID, "state": "terminated", "reason": "closed by SAE"}}, node_id="n") == \
        KmSessionStateEvent("n", SID, "terminated", "closed by SAE")
    assert application_event({"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": SID}}}, node_id="n") is None


@pytest.mark.parametrize("bad", [
    {"etsi-qkd-sdn-node:sdqkdn_application_new": {"qkd_application": {"server_app_id": "a"}}},
    {"etsi-qkd-sdn-node:sdqkdn_application_new": {"qkd_application": {
        "server_app_id": "a", "client_app_id": ["b"], "app_qos": {"max_bandwidth": -1}}}},
    {"qkdn-key-manager:km_key_request": {"bits": 5}},
    {"something": {}},
])
def test_bad_events_are_clear_errors(bad):
    with pytest.raises(TopologyDataError):
        application_event(bad, node_id="n")
