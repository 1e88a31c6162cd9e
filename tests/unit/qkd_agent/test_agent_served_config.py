"""Serving reads from the per-commit cache (qkd_agent.served_config): same bytes as the
copying path, never stale after any kind of commit, and live state never cached."""

from __future__ import annotations

import copy
from typing import Any

import libyang
import pytest
from lxml import etree

from qkd_agent.candidate import CandidateStore
from qkd_agent.datastore import Datastore
from qkd_agent.rpc_error import RpcError
from qkd_agent.serialised_data import SerialisedData
from qkd_agent.served_config import ServedConfig
from qkd_agent.session import build_rpc_reply
from qkd_agent.state_merge import MergeJournal, merge_state
from qkd_agent.subtree_filter import selected_top_level
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
TYPES = "etsi-qkd-node-types"
NODE_ID = "11111111-1111-4111-8111-111111111111"
PEER_ID = "22222222-2222-4222-8222-222222222222"
LINK_ID = "33333333-3333-4333-8333-333333333333"
APP_ID = "55555555-5555-4555-8555-555555555555"
Q = f"{{{ETSI_NODE_NS}}}"
RPC = etree.fromstring(f'<rpc xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}" '
                       'message-id="m-17" extra="kept"><get/></rpc>')
NODE_FILTER = etree.fromstring(
    f'<filter xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}"/></filter>')


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


def config() -> dict[str, Any]:
    return {NODE: {
        "qkdn_id": NODE_ID,
        "qkdn_location_id": "lab-A",
        "qkd_interfaces": {"qkd_interface": [
            {"qkdi_id": 1, "qkdi_type": f"{TYPES}:DV-QKD",
             "qkdi_att_point": {"device": "emu0", "port": 1}}]},
        "qkd_links": {"qkd_link": [
            {"qkdl_id": LINK_ID, "qkdl_enable": True,
             "qkdl_local": {"qkdn_id": NODE_ID, "qkdi_id": 1},
             "qkdl_remote": {"qkdn_id": PEER_ID, "qkdi_id": 1},
             "qkdl_type": f"{TYPES}:PHYS"}]},
        "qkd_applications": {"qkd_app": [
            {"app_id": APP_ID, "app_type": f"{TYPES}:CLIENT", "app_priority": 3,
             "server_app_id": "sae://alice", "client_app_id": ["sae://bob"],
             "local_qkdn_id": NODE_ID, "remote_qkdn_id": PEER_ID}]},
    }}


def status_only(status: str = "OPERATING") -> dict[str, Any]:
    """What a standalone agent reports: one top-level leaf."""
    return {NODE: {"qkdn_status": f"{TYPES}:{status}"}}


def deep_state(skr: int = 120000) -> dict[str, Any]:
    """What a node reports: state inside list entries too."""
    return {NODE: {
        "qkdn_status": f"{TYPES}:OPERATING",
        "qkd_interfaces": {"qkd_interface": [{"qkdi_id": 1, "qkdi_status": f"{TYPES}:ENABLED"}]},
        "qkd_links": {"qkd_link": [{
            "qkdl_id": LINK_ID, "qkdl_status": f"{TYPES}:ACTIVE",
            "qkdl_performance": {"skr": skr, "eskr": 80000, "expected_consumption": 1000}}]},
        "qkd_applications": {"qkd_app": [{"app_id": APP_ID, "app_status": f"{TYPES}:ON"}]},
    }}


def old_reply(store: Datastore, flt: etree._Element | None, state: dict | None) -> bytes:
    data = store.get(flt, state) if state else store.get_config(flt)
    return build_rpc_reply(RPC, [data])


def new_reply(store: Datastore, flt: etree._Element | None, state: dict | None) -> bytes:
    """What operations.get / get_config send: the cache, or the copying path when the
    datastore declines (None)."""
    serialised = store.get_serialised(flt, state)
    return old_reply(store, flt, state) if serialised is None else build_rpc_reply(RPC, serialised)


def location(value: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}">'
        f"<qkdn_id>{NODE_ID}</qkdn_id><qkdn_location_id>{value}</qkdn_location_id>"
        "</qkd_node></config>")


def served_location(store: Datastore, state: dict | None = None) -> str | None:
    reply = etree.fromstring(new_reply(store, NODE_FILTER, state))
    return reply.findtext(f"{{{NETCONF_BASE_NS}}}data/{Q}qkd_node/{Q}qkdn_location_id")


# ----------------------------------------------------------------- same content as before


@pytest.mark.parametrize("state", [None, {}, status_only(), deep_state()],
                         ids=["get-config", "no-state", "top-level-state", "deep-state"])
@pytest.mark.parametrize("with_filter", [False, True], ids=["no-filter", "qkd_node-filter"])
def test_serialised_reply_is_byte_identical_to_the_copying_path(
        ctx: libyang.Context, state: dict | None, with_filter: bool) -> None:
    store = Datastore(ctx, config())
    flt = NODE_FILTER if with_filter else None
    expected = old_reply(store, flt, state)
    assert new_reply(store, flt, state) == expected
    assert new_reply(store, flt, state) == expected  # from the cache the second time
    reply = etree.fromstring(expected)
    assert reply.get("message-id") == "m-17" and reply.get("extra") == "kept"


def test_state_of_a_top_level_node_without_configuration_is_added(
        ctx: libyang.Context) -> None:
    schema = Datastore(ctx, config()).schema
    served = ServedConfig(etree.fromstring(
        f'<data xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_id>{NODE_ID}'
        "</qkdn_id></qkd_node></data>"), {})
    state = etree.fromstring(f'<data xmlns="{NETCONF_BASE_NS}"><s xmlns="urn:s">1</s></data>')
    body = served.serialise(served.select(None), state, {}, schema.root)
    assert body == (f'<data><qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_id>{NODE_ID}</qkdn_id>'
                    '</qkd_node><s xmlns="urn:s">1</s></data>').encode()


def test_other_filters_are_declined(ctx: libyang.Context) -> None:
    store = Datastore(ctx, config())
    links = etree.fromstring(
        f'<filter xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links>'
        "<qkd_link><qkdl_performance/></qkd_link></qkd_links></qkd_node></filter>")
    xpath = etree.fromstring(
        f'<filter xmlns="{NETCONF_BASE_NS}" xmlns:q="{ETSI_NODE_NS}" type="xpath"'
        ' select="/q:qkd_node/q:qkdn_location_id"/>')
    for flt in (links, xpath):
        assert store.get_serialised(flt, deep_state()) is None
        assert store.get_serialised(flt, None) is None


def test_a_filter_selecting_nothing_gives_empty_data(ctx: libyang.Context) -> None:
    store = Datastore(ctx, config())
    other = etree.fromstring(f'<filter xmlns="{NETCONF_BASE_NS}"><nothing xmlns="urn:x"/></filter>')
    assert store.get_serialised(other, None) == SerialisedData(b"<data/>")
    assert new_reply(store, other, status_only()) == old_reply(store, other, status_only())


# ------------------------------------------------------------ never stale, state never cached


def test_live_state_is_read_at_every_get(ctx: libyang.Context) -> None:
    store = Datastore(ctx, config())
    for status in ("OPERATING", "DOWN", "OPERATING"):
        data = store.get_serialised(NODE_FILTER, status_only(status)).element()
        assert data.findtext(f"{Q}qkd_node/{Q}qkdn_status") == f"etsi-qkdn-types:{status}"
    for skr in (1, 2, 3):
        data = store.get_serialised(None, deep_state(skr)).element()
        assert data.findtext(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link/{Q}qkdl_performance/{Q}skr") \
            == str(skr)
    # and the state never leaks into the configuration the cache serves
    assert b"qkdn_status" not in store.get_serialised(None, None).xml
    assert b"qkdl_performance" not in store.get_serialised(None, {}).xml
    assert build_rpc_reply(RPC, store.get_serialised(None, None)) == \
        build_rpc_reply(RPC, [store.get_config(None)])


def test_edit_config_invalidates(ctx: libyang.Context) -> None:
    store = Datastore(ctx, config())
    assert served_location(store, status_only()) == "lab-A"
    store.edit_config(location("lab-B"))
    assert served_location(store, status_only()) == "lab-B"
    assert served_location(store) == "lab-B"


def test_candidate_commit_and_copy_config_invalidate(ctx: libyang.Context) -> None:
    running = Datastore(ctx, config())
    candidate = CandidateStore(running, lambda initial: Datastore(ctx, initial))
    assert served_location(running, deep_state()) == "lab-A"
    candidate.for_edit().edit_config(location("lab-C"))
    assert served_location(candidate.view()) == "lab-C"  # the candidate's own cache
    assert served_location(running, deep_state()) == "lab-A"  # running untouched
    # commit: the candidate replaces running (what operations.commit does)
    whole = candidate.config()
    running.edit_config(whole, default_operation="replace")
    candidate.discard()
    assert served_location(running, deep_state()) == "lab-C"
    assert served_location(candidate.view()) == "lab-C"


def test_a_failed_edit_leaves_the_served_configuration_as_it_was(ctx: libyang.Context) -> None:
    store = Datastore(ctx, config())
    before = new_reply(store, None, deep_state())
    bad = etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}">'
        "<qkd_applications><qkd_app><app_id>not-a-uuid</app_id></qkd_app>"
        "</qkd_applications></qkd_node></config>")
    with pytest.raises(RpcError):
        store.edit_config(bad)
    assert new_reply(store, None, deep_state()) == before
    assert new_reply(store, None, deep_state()) == old_reply(store, None, deep_state())


def test_listener_sees_the_new_configuration_served(ctx: libyang.Context) -> None:
    store = Datastore(ctx, config())
    seen: list[str | None] = []
    store.add_listener(lambda old, new: seen.append(served_location(store, status_only())))
    store.edit_config(location("lab-L"))
    assert seen == ["lab-L"]


# ------------------------------------------------------------------ the building blocks


def test_merge_journal_undo_restores_the_tree(ctx: libyang.Context) -> None:
    store = Datastore(ctx, config())
    data = store.get_config(None)
    before = etree.tostring(data)
    state = store.get(None, deep_state())  # a merged copy: take its state out again below
    state_only = copy.deepcopy(state)
    journal = MergeJournal()
    merge_state(data, state_only, store.schema.root, journal)
    assert etree.tostring(data) != before
    assert journal.only_appends_to is None  # state went deep, and replaced leaves
    journal.undo()
    assert etree.tostring(data) == before
    assert journal.steps == []


def test_merge_journal_only_appends_to() -> None:
    target = etree.fromstring(f'<data xmlns="{NETCONF_BASE_NS}"><a xmlns="urn:a"/></data>')
    top = target[0]
    journal = MergeJournal()
    journal.steps.append((top, etree.Element("{urn:a}b"), None))
    journal.steps.append((top, etree.Element("{urn:a}c"), None))
    assert journal.only_appends_to is top
    journal.steps.append((target, etree.Element("{urn:a}d"), None))
    assert journal.only_appends_to is None
    assert MergeJournal().only_appends_to is None


def test_selected_top_level_returns_the_nodes_themselves() -> None:
    data = etree.fromstring(
        f'<data xmlns="{NETCONF_BASE_NS}"><a xmlns="urn:a"/><b xmlns="urn:b"/><a2 xmlns="urn:a"/>'
        "</data>")
    flt = etree.fromstring(f'<filter xmlns="{NETCONF_BASE_NS}"><b xmlns="urn:b"/>'
                           '<a xmlns="urn:a"/></filter>')
    assert selected_top_level(data, flt) == [data[0], data[1]]  # document order
    wildcard = etree.fromstring(f'<filter xmlns="{NETCONF_BASE_NS}"><b xmlns=""/></filter>')
    assert selected_top_level(data, wildcard) == [data[1]]
    deeper = etree.fromstring(f'<filter xmlns="{NETCONF_BASE_NS}"><a xmlns="urn:a"><x/></a>'
                              "</filter>")
    with pytest.raises(ValueError):
        selected_top_level(data, deeper)


def test_build_rpc_reply_splices_serialised_data() -> None:
    data = SerialisedData(b'<data><x xmlns="urn:x">1</x></data>')
    reply = build_rpc_reply(RPC, data)
    assert reply.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(reply)
    assert root.tag == f"{{{NETCONF_BASE_NS}}}rpc-reply" and root.get("message-id") == "m-17"
    assert root[0].tag == f"{{{NETCONF_BASE_NS}}}data"
    assert root[0][0].tag == "{urn:x}x" and root[0][0].text == "1"
    as_element = build_rpc_reply(RPC, [data.element()])
    assert etree.tostring(etree.fromstring(as_element), method="c14n") == \
        etree.tostring(root, method="c14n")


def test_list_entries_added_by_an_edit_get_their_state(ctx: libyang.Context) -> None:
    """The key indexes kept between gets belong to one commit: an entry an edit adds is
    found (state merged into it), not duplicated."""
    store = Datastore(ctx, config())
    two = copy.deepcopy(deep_state())
    two[NODE]["qkd_interfaces"]["qkd_interface"].append(
        {"qkdi_id": 2, "qkdi_status": f"{TYPES}:FAILED"})
    first = store.get_serialised(None, two).element()  # entry 2: state only, appended
    assert len(first.findall(f"{Q}qkd_node/{Q}qkd_interfaces/{Q}qkd_interface")) == 2
    store.edit_config(etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}" '
        f'xmlns:t="urn:etsi:qkd:yang:etsi-qkd-node-types"><qkd_interfaces><qkd_interface>'
        "<qkdi_id>2</qkdi_id><qkdi_type>t:DV-QKD</qkdi_type></qkd_interface>"
        "</qkd_interfaces></qkd_node></config>"))
    for _ in range(2):
        data = store.get_serialised(None, two).element()
        entries = data.findall(f"{Q}qkd_node/{Q}qkd_interfaces/{Q}qkd_interface")
        assert [e.findtext(f"{Q}qkdi_id") for e in entries] == ["1", "2"]
        assert entries[1].findtext(f"{Q}qkdi_type") == "etsi-qkdn-types:DV-QKD"
        assert entries[1].findtext(f"{Q}qkdi_status") == "etsi-qkdn-types:FAILED"
    assert build_rpc_reply(RPC, store.get_serialised(None, two)) == old_reply(store, None, two)


@pytest.mark.parametrize("state", [None, status_only()], ids=["get-config", "state"])
@pytest.mark.parametrize("with_filter", [False, True], ids=["no-filter", "qkd_node-filter"])
def test_unconfigured_datastore(ctx: libyang.Context, state: dict | None,
                                with_filter: bool) -> None:
    store = Datastore(ctx, None)
    flt = NODE_FILTER if with_filter else None
    assert new_reply(store, flt, state) == old_reply(store, flt, state)
    if state is None:
        assert store.get_serialised(flt, None) == SerialisedData(b"<data/>")
