"""apply_edit as a pure function: copy on write, value encoding."""

from __future__ import annotations

import copy
import json

import libyang
import pytest
from lxml import etree

from qkd_agent.edit_operations import DefaultOperation, apply_edit, canonical_decimal
from qkd_agent.rpc_error import RpcError
from qkd_agent.schema_tree import NodeKind, SchemaTree, ValueKind, build_schema_tree
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
LINK_A = "33333333-3333-4333-8333-333333333333"
LINK_B = "44444444-4444-4444-8444-444444444444"


@pytest.fixture(scope="module")
def schema() -> SchemaTree:
    ctx: libyang.Context = load_context()
    return build_schema_tree(ctx)


RUNNING = {NODE: {
    "qkdn_id": "11111111-1111-4111-8111-111111111111",
    "qkd_links": {"qkd_link": [
        {"qkdl_id": LINK_A, "qkdl_type": "etsi-qkd-node-types:PHYS", "phys_channel_att": "1.0"},
        {"qkdl_id": LINK_B, "qkdl_type": "etsi-qkd-node-types:VIRT", "virt_next_hop": ["x"]},
    ]},
}}


def config(body: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<qkd_node xmlns="{ETSI_NODE_NS}" xmlns:t="{ETSI_TYPES_NS}">{body}</qkd_node></config>'
    )


def test_schema_tree_mirrors_the_model(schema: SchemaTree) -> None:
    node = schema.root.child(ETSI_NODE_NS, "qkd_node")
    assert node is not None and node.json_name == NODE
    link = node.child(ETSI_NODE_NS, "qkd_links").child(ETSI_NODE_NS, "qkd_link")
    assert link.kind is NodeKind.LIST and link.keys == ("qkdl_id",)
    assert link.child(ETSI_NODE_NS, "qkdl_type").value_kind is ValueKind.IDENTITYREF
    assert link.child(ETSI_NODE_NS, "virt_bandwidth").value_kind is ValueKind.NUMBER
    assert link.child(ETSI_NODE_NS, "phys_channel_att").value_kind is ValueKind.DECIMAL
    assert link.child(ETSI_NODE_NS, "qkdl_enable").value_kind is ValueKind.BOOLEAN
    assert not link.child(ETSI_NODE_NS, "qkdl_performance").child(ETSI_NODE_NS, "skr").config
    assert schema.module_by_namespace[ETSI_TYPES_NS] == "etsi-qkd-node-types"


@pytest.mark.parametrize(
    "body",
    [
        (f"<qkd_links><qkd_link><qkdl_id>{LINK_A}</qkdl_id><qkdl_enable>true</qkdl_enable>"
        "</qkd_link></qkd_links>"),
        (f'<qkd_links><qkd_link nc:operation="delete"><qkdl_id>{LINK_B}</qkdl_id></qkd_link>'
        "</qkd_links>"),
        (f"<qkd_links><qkd_link><qkdl_id>{LINK_B}</qkdl_id>"
        '<virt_next_hop nc:operation="delete">x</virt_next_hop></qkd_link></qkd_links>'),
        (f"<qkd_links><qkd_link><qkdl_id>{LINK_B}</qkdl_id><virt_next_hop>y</virt_next_hop>"
        "</qkd_link></qkd_links>"),
        '<qkd_links nc:operation="replace"/>',
        (f'<qkd_links><qkd_link nc:operation="create"><qkdl_id>{LINK_A}</qkdl_id></qkd_link>'
        "</qkd_links>"),  # fails: data-exists
    ],
)
def test_running_is_never_modified(schema: SchemaTree, body: str) -> None:
    running = copy.deepcopy(RUNNING)
    frozen = json.dumps(running)
    try:
        candidate, errors = apply_edit(running, config(body), schema)
        assert candidate != running and errors == []
    except RpcError:
        pass
    assert json.dumps(running) == frozen


def test_untouched_entries_are_shared(schema: SchemaTree) -> None:
    running = copy.deepcopy(RUNNING)
    candidate, _ = apply_edit(running, config(
        f"<qkd_links><qkd_link><qkdl_id>{LINK_B}</qkdl_id><virt_bandwidth>1</virt_bandwidth>"
        "</qkd_link></qkd_links>"), schema)
    old_links = running[NODE]["qkd_links"]["qkd_link"]
    new_links = candidate[NODE]["qkd_links"]["qkd_link"]
    assert new_links[0] is old_links[0]
    assert new_links[1] is not old_links[1]
    assert new_links[1]["virt_bandwidth"] == 1


def test_default_operation_replace_starts_from_nothing(schema: SchemaTree) -> None:
    candidate, _ = apply_edit(
        RUNNING, config("<qkdn_version>1</qkdn_version>"), schema, DefaultOperation.REPLACE)
    assert candidate == {NODE: {"qkdn_version": "1"}}


def test_values_are_encoded_for_rfc7951(schema: SchemaTree) -> None:
    candidate, _ = apply_edit({}, config(
        f"<qkd_links><qkd_link><qkdl_id>{LINK_A}</qkdl_id><qkdl_enable> false </qkdl_enable>"
        "<qkdl_type> t:PHYS </qkdl_type><phys_channel_att>04.50</phys_channel_att>"
        "<qkdl_local><qkdi_id> 007 </qkdi_id></qkdl_local></qkd_link></qkd_links>"), schema)
    (link,) = candidate[NODE]["qkd_links"]["qkd_link"]
    assert link == {
        "qkdl_id": LINK_A, "qkdl_enable": False, "qkdl_type": "etsi-qkd-node-types:PHYS",
        "phys_channel_att": "4.5", "qkdl_local": {"qkdi_id": 7}}


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("4.20", "4.2"), ("04.2", "4.2"), ("3", "3.0"), ("100", "100.0"), ("0.500", "0.5"),
     ("-1.000", "-1.0"), ("+2.5", "2.5"), (" 7.10 ", "7.1"), ("1e2", "1e2"), ("abc", "abc")],
)
def test_canonical_decimal(text: str, canonical: str) -> None:
    assert canonical_decimal(text) == canonical
