"""Edits patched into the running tree in place give what a validated copy gives."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import libyang
import pytest
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.rpc_error import RpcError
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS

_spec = importlib.util.spec_from_file_location(
    "agent_datastore_sample", Path(__file__).with_name("test_agent_datastore.py"))
_sample = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sample)
NODE, NODE_ID, PEER_ID, PHYS_ID, VIRT_ID, APP_ID = (
    _sample.NODE, _sample.NODE_ID, _sample.PEER_ID, _sample.PHYS_ID, _sample.VIRT_ID,
    _sample.APP_ID)
NC = NETCONF_BASE_NS


def config(body: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NC}" xmlns:nc="{NC}"><qkd_node xmlns="{ETSI_NODE_NS}" '
        f'xmlns:t="{ETSI_TYPES_NS}"><qkdn_id>{NODE_ID}</qkdn_id>{body}</qkd_node></config>')


def link(qkdl_id: str, body: str, operation: str = "") -> str:
    op = f' nc:operation="{operation}"' if operation else ""
    return f"<qkd_links><qkd_link{op}><qkdl_id>{qkdl_id}</qkdl_id>{body}</qkd_link></qkd_links>"


def app(body: str, operation: str = "") -> str:
    op = f' nc:operation="{operation}"' if operation else ""
    return (f"<qkd_applications><qkd_app{op}><app_id>{APP_ID}</app_id>{body}</qkd_app>"
            "</qkd_applications>")


EDITS = [
    app("<app_priority>7</app_priority>"),                                   # a leaf changes
    app("<client_app_id>sae://carol</client_app_id>"),                       # leaf-list grows
    app("<client_app_id nc:operation='delete'>sae://bob</client_app_id>"),   # and shrinks
    link(VIRT_ID, "<qkdl_type>t:PHYS</qkdl_type>"),        # 'when' of the hop settings turns false
    link(PHYS_ID, "<qkdl_type>t:VIRT</qkdl_type>"),        # and of the channel settings
    link(PHYS_ID, "<phys_channel_att nc:operation='delete'/>"),
    link(VIRT_ID, "", operation="delete"),
    link(VIRT_ID, "<virt_bandwidth>not-a-number</virt_bandwidth>"),          # refused
    link(VIRT_ID, "<qkdl_type>t:NO-SUCH-TYPE</qkdl_type>"),                 # refused
    app("<app_type>t:INTERNAL</app_type>"),
    app("", operation="delete"),
]


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


def outcome(store: Datastore, body: str) -> tuple[str, object]:
    try:
        store.edit_config(config(body))
    except RpcError as exc:
        return "refused", exc.tag
    return "applied", store.running_json()


@pytest.mark.parametrize("body", EDITS)
def test_in_place_edit_equals_the_edit_of_a_validated_copy(ctx, body):
    in_place = Datastore(ctx, _sample.sample_config())
    on_copy = Datastore(ctx, _sample.sample_config())
    on_copy._referencing = on_copy._referencing | {NODE}   # forces the copy path
    fresh = outcome(on_copy, body)
    assert outcome(in_place, body) == fresh
    if fresh[0] == "refused":                     # the running tree was rebuilt unchanged
        assert in_place.running_json() == _sample.sample_config()
    # and the tree keeps working: the next edit and a get see the same data
    follow = app("<app_priority>2</app_priority>")
    assert outcome(in_place, follow) == outcome(on_copy, follow)
    assert (etree.tostring(in_place.get_config()) == etree.tostring(on_copy.get_config()))


def test_edits_in_sequence_stay_equal(ctx):
    in_place = Datastore(ctx, _sample.sample_config())
    on_copy = Datastore(ctx, _sample.sample_config())
    on_copy._referencing = on_copy._referencing | {NODE}
    for body in EDITS:
        assert outcome(in_place, body) == outcome(on_copy, body)


def test_trees_with_leafrefs_are_never_patched_in_place(ctx):
    store = Datastore(ctx, _sample.sample_config())
    assert "qkdn-sdn-topology:qkd_network" in store._referencing
    assert NODE not in store._referencing
