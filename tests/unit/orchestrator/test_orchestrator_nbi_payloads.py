"""NETCONF payloads of the orchestrator: exact XML, built without sockets."""

from __future__ import annotations

import pytest
from lxml import etree

from orchestrator.errors import InvalidRequest
from orchestrator.nbi_payloads import (
    EditOperation,
    access_edit,
    access_filter,
    close_svc_link_rpc,
    node_filter,
    phys_link_edit,
    restore_svc_link_rpc,
    svc_link_filter,
    xml_text,
)

TOPO = "urn:qkdn:yang:qkdn-sdn-topology"
ACC = "urn:qkdn:yang:qkdn-sdn-access"
INV = "urn:qkdn:yang:qkdn-sdn-inventory"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def text(element: etree._Element) -> str:
    return etree.tostring(element).decode()


def test_filters_select_the_yang_subtrees() -> None:
    assert text(node_filter()) == (
        f'<qkd_network xmlns="{TOPO}"><sdqkd_nodes/></qkd_network>')
    assert text(svc_link_filter("55555551-5555-4555-8555-555555555551")) == (
        f'<qkd_network xmlns="{TOPO}"><qkd_links><svc_links><svc_link>'
        '<qkdl_id>55555551-5555-4555-8555-555555555551</qkdl_id>'
        '</svc_link></svc_links></qkd_links></qkd_network>')
    assert text(access_filter("users", "bank-a")) == (
        f'<qkd_access xmlns="{ACC}"><users><user><name>bank-a</name></user></users>'
        '</qkd_access>')
    assert text(access_filter()) == f'<qkd_access xmlns="{ACC}"/>'


def test_create_puts_the_key_first_and_qualifies_identities() -> None:
    body = {"max_bandwidth": 10, "name": "gold", "allow_lower_rate": False,
            "path_restoration": {"restoration_type": "MANUAL", "hold_off_time": 5}}
    xml = text(access_edit("sla_profiles", body, EditOperation.CREATE))
    assert xml == (
        f'<nc:config xmlns:nc="{NC}"><qkd_access xmlns="{ACC}" xmlns:qkdn-acc="{ACC}">'
        '<sla_profiles><sla_profile nc:operation="create"><name>gold</name>'
        '<max_bandwidth>10</max_bandwidth><allow_lower_rate>false</allow_lower_rate>'
        '<path_restoration><restoration_type>qkdn-acc:MANUAL</restoration_type>'
        '<hold_off_time>5</hold_off_time></path_restoration></sla_profile></sla_profiles>'
        '</qkd_access></nc:config>')


def test_leaf_lists_repeat_and_state_leaves_never_go_out() -> None:
    xml = text(access_edit("users", {"name": "a", "sla_profile": "s",
                                     "allowed_peer": ["b", "*"], "active_sessions": 3},
                           EditOperation.MERGE))
    assert "<allowed_peer>b</allowed_peer><allowed_peer>*</allowed_peer>" in xml
    assert "active_sessions" not in xml and 'nc:operation="merge"' in xml


def test_delete_carries_only_the_key() -> None:
    xml = text(access_edit("applications", {"sae_id": "app-1", "user": "x"},
                           EditOperation.DELETE))
    assert ('<application nc:operation="delete"><sae_id>app-1</sae_id></application>'
            in xml)
    assert "<user>" not in xml


def test_phys_link_edit_targets_the_inventory_augment() -> None:
    xml = text(phys_link_edit("11111111-1111-4111-8111-111111111111", {"qkdl_enable": False}))
    assert (f'<phys_link_details xmlns="{INV}"><qkdl_enable>false</qkdl_enable>'
            '</phys_link_details>') in xml
    assert "<qkdl_id>11111111-1111-4111-8111-111111111111</qkdl_id>" in xml


def test_rpcs() -> None:
    assert text(close_svc_link_rpc("x-1", "operator request")) == (
        f'<close_svc_link xmlns="{INV}"><qkdl_id>x-1</qkdl_id>'
        '<reason>operator request</reason></close_svc_link>')
    assert text(close_svc_link_rpc("x-1")) == (
        f'<close_svc_link xmlns="{INV}"><qkdl_id>x-1</qkdl_id></close_svc_link>')
    assert text(restore_svc_link_rpc("x-1")) == (
        f'<restore_svc_link xmlns="{INV}"><qkdl_id>x-1</qkdl_id></restore_svc_link>')


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1fb", "\ud800", "\uffff"])
def test_text_xml_cannot_carry_is_an_invalid_request(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        xml_text(bad)
    with pytest.raises(InvalidRequest):
        access_filter("users", bad)
    assert xml_text("tab\tnew\nline é") == "tab\tnew\nline é"
