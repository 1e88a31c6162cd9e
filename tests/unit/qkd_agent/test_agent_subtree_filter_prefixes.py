"""Identityref values whose module is also the default namespace keep a declared prefix
through subtree filtering (found by the orchestrator: an SLA profile's restoration_type came
back as 'qkdn-acc:MANUAL' with no xmlns:qkdn-acc in scope)."""

from __future__ import annotations

from lxml import etree

from qkd_agent.subtree_filter import filter_subtree

ACC = "urn:qkdn:yang:qkdn-sdn-access"
DATA = (f'<data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><qkd_access xmlns="{ACC}">'
        '<sla_profiles><sla_profile><name>x</name><path_restoration>'
        f'<restoration_type xmlns:qkdn-acc="{ACC}">qkdn-acc:MANUAL</restoration_type>'
        '</path_restoration></sla_profile></sla_profiles>'
        '<users><user><name>u</name></user></users></qkd_access></data>')


def _value_namespace(filter_body: str) -> str | None:
    data = etree.fromstring(DATA)
    flt = etree.fromstring(f'<filter xmlns="{ACC}">{filter_body}</filter>')
    (top,) = filter_subtree(data, flt)
    leaf = next(top.iter(f"{{{ACC}}}restoration_type"))
    reparsed = etree.fromstring(etree.tostring(top))  # as a client receives it
    leaf = next(reparsed.iter(f"{{{ACC}}}restoration_type"))
    prefix = leaf.text.split(":", 1)[0]
    return leaf.nsmap.get(prefix)


def test_prefix_survives_a_partial_selection() -> None:
    assert _value_namespace("<qkd_access><sla_profiles/></qkd_access>") == ACC
    assert _value_namespace(
        "<qkd_access><sla_profiles><sla_profile><name>x</name></sla_profile>"
        "</sla_profiles></qkd_access>") == ACC


def test_prefix_survives_a_whole_selection() -> None:
    assert _value_namespace("<qkd_access/>") == ACC


def test_notification_keeps_the_prefix_of_an_identity_of_its_own_module() -> None:
    from datetime import UTC, datetime

    from qkd_agent.notifications import build_notification

    inv = "urn:qkdn:yang:qkdn-sdn-inventory"
    body = etree.fromstring(f'<alarm xmlns="{inv}"><alarm_type xmlns:qkdn-inv="{inv}">'
                            'qkdn-inv:QBER-HIGH</alarm_type><message>é</message></alarm>')
    message = etree.fromstring(build_notification(body, datetime(2026, 1, 1, tzinfo=UTC)))
    leaf = next(message.iter(f"{{{inv}}}alarm_type"))
    assert leaf.nsmap["qkdn-inv"] == inv
    assert next(message.iter(f"{{{inv}}}message")).text == "é"
