"""The running datastore: construction, round trips, get-config/get with filters, listeners."""

from __future__ import annotations

from typing import Any

import libyang
import pytest
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.rpc_error import ErrorTag, RpcError
from qkd_agent.yang_context import load_context
from qkdn.errors import ConfigError
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
TYPES = "etsi-qkd-node-types"
NODE_ID = "11111111-1111-4111-8111-111111111111"
PEER_ID = "22222222-2222-4222-8222-222222222222"
PHYS_ID = "33333333-3333-4333-8333-333333333333"
VIRT_ID = "44444444-4444-4444-8444-444444444444"
APP_ID = "55555555-5555-4555-8555-555555555555"
Q = f"{{{ETSI_NODE_NS}}}"


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


def sample_config() -> dict[str, Any]:
    return {
        NODE: {
            "qkdn_id": NODE_ID,
            "qkdn_location_id": "lab-A",
            "qkdn_capabilities": {"link_stats_support": True, "key_relay_mode_enable": True},
            "qkd_applications": {"qkd_app": [{
                "app_id": APP_ID,
                "app_type": f"{TYPES}:CLIENT",
                "server_app_id": "sae://alice",
                "client_app_id": ["sae://bob"],
                "app_priority": 3,
                "app_qos": {"max_bandwidth": 64000, "min_bandwidth": 1000},
                "backing_qkdl_id": [VIRT_ID],
                "local_qkdn_id": NODE_ID,
                "remote_qkdn_id": PEER_ID,
            }]},
            "qkd_interfaces": {"qkd_interface": [{
                "qkdi_id": 1,
                "qkdi_type": f"{TYPES}:DV-QKD",
                "qkdi_att_point": {"device": "emu0", "port": 1},
                "qkdi_capabilities": {"role_support": f"{TYPES}:TRANSMITTER",
                                      "max_absorption": "12.5"},
            }]},
            "qkd_links": {"qkd_link": [
                {
                    "qkdl_id": PHYS_ID,
                    "qkdl_enable": True,
                    "qkdl_local": {"qkdn_id": NODE_ID, "qkdi_id": 1},
                    "qkdl_remote": {"qkdn_id": PEER_ID, "qkdi_id": 1},
                    "qkdl_type": f"{TYPES}:PHYS",
                    "phys_channel_att": "4.2",
                    "phys_qkd_role": f"{TYPES}:TRANSMITTER",
                },
                {
                    "qkdl_id": VIRT_ID,
                    "qkdl_local": {"qkdn_id": NODE_ID},
                    "qkdl_remote": {"qkdn_id": PEER_ID},
                    "qkdl_type": f"{TYPES}:VIRT",
                    "virt_prev_hop": NODE_ID,
                    "virt_next_hop": [PEER_ID],
                    "virt_bandwidth": 5000,
                },
            ]},
        }
    }


@pytest.fixture
def store(ctx: libyang.Context) -> Datastore:
    return Datastore(ctx, sample_config())


def subtree_filter(body: str) -> etree._Element:
    return etree.fromstring(f'<filter xmlns="{NETCONF_BASE_NS}" type="subtree">{body}</filter>')


def test_initial_config_round_trips_as_json(store: Datastore) -> None:
    assert store.running_json() == sample_config()


def test_running_json_is_a_copy(store: Datastore) -> None:
    store.running_json()[NODE]["qkdn_id"] = "changed"
    assert store.running_json()[NODE]["qkdn_id"] == NODE_ID


def test_invalid_initial_config_is_a_config_error(ctx: libyang.Context) -> None:
    bad = sample_config()
    bad[NODE]["qkd_links"]["qkd_link"][0]["virt_bandwidth"] = 10  # on a PHYS link
    with pytest.raises(ConfigError, match="virt_bandwidth"):
        Datastore(ctx, bad)


def test_empty_store_returns_empty_data(ctx: libyang.Context) -> None:
    store = Datastore(ctx)
    data = store.get_config()
    assert data.tag == f"{{{NETCONF_BASE_NS}}}data"
    assert len(data) == 0
    assert store.running_json() == {}


def test_get_config_is_data_element_with_identityrefs_qualified(store: Datastore) -> None:
    data = store.get_config()
    assert data.tag == f"{{{NETCONF_BASE_NS}}}data"
    (node,) = data
    assert node.tag == f"{Q}qkd_node"
    link_type = node.find(f"{Q}qkd_links/{Q}qkd_link/{Q}qkdl_type")
    prefix, _, name = link_type.text.partition(":")
    assert name == "PHYS"
    assert link_type.nsmap[prefix] == ETSI_TYPES_NS


def test_identityrefs_module_qualified_in_json(store: Datastore) -> None:
    links = store.running_json()[NODE]["qkd_links"]["qkd_link"]
    assert [link["qkdl_type"] for link in links] == [f"{TYPES}:PHYS", f"{TYPES}:VIRT"]


def test_xml_round_trip_through_the_store(ctx: libyang.Context, store: Datastore) -> None:
    """XML out of one store, edited into an empty one, gives the same XML and JSON."""
    xml = store.get_config()
    config = etree.Element(f"{{{NETCONF_BASE_NS}}}config")
    for child in xml:
        config.append(child)
    other = Datastore(ctx)
    other.edit_config(config)
    assert other.running_json() == store.running_json()
    assert etree.tostring(other.get_config()) == etree.tostring(store.get_config())


def test_get_config_result_is_independent_of_store(store: Datastore) -> None:
    data = store.get_config()
    data[0].clear()
    assert len(store.get_config()[0]) > 1


def test_get_config_with_subtree_filter_returns_keys_and_selected_leaves(store: Datastore) -> None:
    data = store.get_config(subtree_filter(
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link><virt_bandwidth/>'
        "</qkd_link></qkd_links></qkd_node>"
    ))
    links = data.findall(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link")
    # only entries holding the selected leaf are returned, with their key
    assert [[etree.QName(c).localname for c in link] for link in links] == [
        ["qkdl_id", "virt_bandwidth"]]
    assert links[0].findtext(f"{Q}qkdl_id") == VIRT_ID


def test_get_config_with_identityref_content_match(store: Datastore) -> None:
    data = store.get_config(subtree_filter(
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link>'
        f'<qkdl_type xmlns:x="{ETSI_TYPES_NS}">x:VIRT</qkdl_type>'
        "</qkd_link></qkd_links></qkd_node>"
    ))
    links = data.findall(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link")
    assert [link.findtext(f"{Q}qkdl_id") for link in links] == [VIRT_ID]
    assert links[0].findtext(f"{Q}virt_bandwidth") == "5000"  # whole entry


def test_get_config_with_key_content_match(store: Datastore) -> None:
    data = store.get_config(subtree_filter(
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>'
        "<qkdl_enable/></qkd_link></qkd_links></qkd_node>"
    ))
    (link,) = data.findall(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link")
    assert [etree.QName(c).localname for c in link] == ["qkdl_id", "qkdl_enable"]


def test_get_config_with_wrong_namespace_filter_is_empty(store: Datastore) -> None:
    assert len(store.get_config(subtree_filter('<qkd_node xmlns="urn:nowhere"/>'))) == 0


def test_get_config_with_empty_filter_is_empty(store: Datastore) -> None:
    assert len(store.get_config(subtree_filter(""))) == 0


def test_unknown_filter_type_is_bad_attribute(store: Datastore) -> None:
    flt = etree.fromstring(f'<filter xmlns="{NETCONF_BASE_NS}" type="jsonpath"/>')
    with pytest.raises(RpcError) as exc:
        store.get_config(flt)
    assert exc.value.tag is ErrorTag.BAD_ATTRIBUTE
    assert exc.value.info["bad-attribute"] == "type"


def xpath_filter(select: str, prefix: str = "q") -> etree._Element:
    return etree.fromstring(
        f'<filter xmlns="{NETCONF_BASE_NS}" xmlns:{prefix}="{ETSI_NODE_NS}" type="xpath"'
        f' select="{select}"/>'
    )


def test_xpath_filter_selects_nodes_with_ancestors_and_keys(store: Datastore) -> None:
    data = store.get_config(xpath_filter("/q:qkd_node/q:qkd_links/q:qkd_link/q:virt_bandwidth"))
    links = data.findall(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link")
    assert len(links) == 1
    assert [etree.QName(c).localname for c in links[0]] == ["qkdl_id", "virt_bandwidth"]


def test_xpath_filter_with_predicate_on_identityref(store: Datastore) -> None:
    data = store.get_config(xpath_filter(
        "/q:qkd_node/q:qkd_links/q:qkd_link[derived-from-or-self(q:qkdl_type,"
        " 'etsi-qkd-node-types:PHYS')]", prefix="q"))
    (link,) = data.findall(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link")
    assert link.findtext(f"{Q}qkdl_id") == PHYS_ID
    assert link.findtext(f"{Q}phys_channel_att") == "4.2"


def test_xpath_filter_with_undeclared_prefix_is_invalid_value(store: Datastore) -> None:
    with pytest.raises(RpcError) as exc:
        store.get_config(xpath_filter("/zz:qkd_node"))
    assert exc.value.tag is ErrorTag.INVALID_VALUE


def test_xpath_filter_syntax_error_is_invalid_value(store: Datastore) -> None:
    with pytest.raises(RpcError) as exc:
        store.get_config(xpath_filter("/q:qkd_node[[["))
    assert exc.value.tag is ErrorTag.INVALID_VALUE


def test_xpath_filter_without_select_is_missing_attribute(store: Datastore) -> None:
    flt = etree.fromstring(f'<filter xmlns="{NETCONF_BASE_NS}" type="xpath"/>')
    with pytest.raises(RpcError) as exc:
        store.get_config(flt)
    assert exc.value.tag is ErrorTag.MISSING_ATTRIBUTE


def operational_state() -> dict[str, Any]:
    return {
        NODE: {
            "qkdn_status": f"{TYPES}:OPERATING",
            "qkd_interfaces": {"qkd_interface": [
                {"qkdi_id": 1, "qkdi_status": f"{TYPES}:ENABLED"}]},
            "qkd_links": {"qkd_link": [{
                "qkdl_id": PHYS_ID,
                "qkdl_performance": {
                    "skr": 120000, "eskr": 80000, "expected_consumption": 1000,
                    "phys_perf": [{"perf_type": f"{TYPES}:QBER", "value": "0.021"}],
                },
            }]},
        }
    }


def test_get_merges_operational_state_into_config(store: Datastore) -> None:
    data = store.get(None, operational_state())
    node = data.find(f"{Q}qkd_node")
    assert node.findtext(f"{Q}qkdn_status").endswith(":OPERATING")
    assert node.findtext(f"{Q}qkdn_location_id") == "lab-A"  # config still there
    phys = node.find(f"{Q}qkd_links/{Q}qkd_link")
    assert phys.findtext(f"{Q}qkdl_id") == PHYS_ID
    assert phys.findtext(f"{Q}qkdl_performance/{Q}skr") == "120000"
    assert phys.findtext(f"{Q}qkdl_performance/{Q}phys_perf/{Q}value") == "0.021"
    assert phys.findtext(f"{Q}phys_channel_att") == "4.2"
    # the store itself holds no state data
    assert "qkdn_status" not in store.running_json()[NODE]


def test_get_filters_merged_data(store: Datastore) -> None:
    data = store.get(subtree_filter(
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link><qkdl_performance/>'
        "</qkd_link></qkd_links></qkd_node>"
    ), operational_state())
    links = data.findall(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link")
    assert len(links) == 1  # the virtual link has no performance data
    assert [etree.QName(c).localname for c in links[0]] == ["qkdl_id", "qkdl_performance"]


def test_get_with_xpath_filter_on_state(store: Datastore) -> None:
    data = store.get(xpath_filter("/q:qkd_node/q:qkdn_status"), operational_state())
    (node,) = data
    assert [etree.QName(c).localname for c in node] == ["qkdn_status"]


def test_get_without_state_equals_get_config(store: Datastore) -> None:
    assert etree.tostring(store.get(None, None)) == etree.tostring(store.get_config())


def test_get_with_invalid_state_is_operation_failed(store: Datastore) -> None:
    bad = {NODE: {"qkdn_status": f"{TYPES}:SLEEPING"}}
    with pytest.raises(RpcError) as exc:
        store.get(None, bad)
    assert exc.value.tag is ErrorTag.OPERATION_FAILED
    with pytest.raises(RpcError):
        store.get(None, {NODE: {"no_such_leaf": 1}})


def config(body: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}">{body}'
        "</qkd_node></config>"
    )


def test_listener_gets_old_and_new_config(store: Datastore) -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
    store.add_listener(lambda old, new: calls.append((old, new)))
    store.edit_config(config("<qkdn_location_id>lab-B</qkdn_location_id>"))
    ((old, new),) = calls
    assert old == sample_config()
    assert new[NODE]["qkdn_location_id"] == "lab-B"
    assert new == store.running_json()


def test_listener_not_called_without_change_or_on_failure(store: Datastore) -> None:
    calls: list[Any] = []
    store.add_listener(lambda old, new: calls.append(new))
    store.edit_config(config("<qkdn_location_id>lab-A</qkdn_location_id>"))  # same value
    with pytest.raises(RpcError):
        store.edit_config(config("<qkdn_location_id><x/></qkdn_location_id>"))
    store.edit_config(config("<qkdn_version>2</qkdn_version>"), test_option="test-only")
    assert calls == []


def test_commit_check_sees_the_change_and_may_refuse_it(store: Datastore) -> None:
    seen: list[tuple[str, str]] = []
    committed: list[Any] = []

    def check(old: dict[str, Any], new: dict[str, Any]) -> None:
        seen.append((old[NODE]["qkdn_location_id"], new[NODE]["qkdn_location_id"]))
        if new[NODE]["qkdn_location_id"] == "forbidden":
            raise RpcError(ErrorTag.OPERATION_FAILED, "the database said no")

    store.add_commit_check(check)
    store.add_listener(lambda old, new: committed.append(new[NODE]["qkdn_location_id"]))
    store.edit_config(config("<qkdn_location_id>lab-B</qkdn_location_id>"))
    with pytest.raises(RpcError) as refused:
        store.edit_config(config("<qkdn_location_id>forbidden</qkdn_location_id>"))
    assert refused.value.message == "the database said no"
    assert store.running_json()[NODE]["qkdn_location_id"] == "lab-B"
    # an invalid edit never reaches the check; test-only does not either
    with pytest.raises(RpcError):
        store.edit_config(config("<qkdn_location_id><x/></qkdn_location_id>"))
    store.edit_config(config("<qkdn_location_id>lab-C</qkdn_location_id>"),
                      test_option="test-only")
    assert seen == [("lab-A", "lab-B"), ("lab-B", "forbidden")]
    assert committed == ["lab-B"]


def test_failing_listener_does_not_undo_the_change(store: Datastore) -> None:
    seen: list[str] = []

    def broken(old: dict[str, Any], new: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    store.add_listener(lambda old, new: seen.append(new[NODE]["qkdn_location_id"]))
    store.edit_config(config("<qkdn_location_id>lab-C</qkdn_location_id>"))
    assert seen == ["lab-C"]
    assert store.running_json()[NODE]["qkdn_location_id"] == "lab-C"
    store.remove_listener(broken)


def test_validate_running_and_a_complete_config(store: Datastore) -> None:
    store.validate()
    store.validate(config(f"<qkdn_id>{NODE_ID}</qkdn_id>"))
    with pytest.raises(RpcError) as exc:  # a complete config without the mandatory qkdn_id
        store.validate(config("<qkdn_location_id>x</qkdn_location_id>"))
    assert exc.value.tag is ErrorTag.MISSING_ELEMENT
    assert store.running_json() == sample_config()


def test_store_with_many_links_and_apps(ctx: libyang.Context) -> None:
    cfg = sample_config()
    links = cfg[NODE]["qkd_links"]["qkd_link"]
    apps = cfg[NODE]["qkd_applications"]["qkd_app"]
    for i in range(50):
        links.append({"qkdl_id": f"aaaaaaaa-0000-4000-8000-{i:012d}",
                      "qkdl_type": f"{TYPES}:VIRT", "virt_bandwidth": i})
    for i in range(200):
        apps.append({"app_id": f"bbbbbbbb-0000-4000-8000-{i:012d}", "app_priority": i})
    store = Datastore(ctx, cfg)
    assert store.running_json() == cfg
    data = store.get_config()
    assert len(data.findall(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link")) == 52
    assert len(data.findall(f"{Q}qkd_node/{Q}qkd_applications/{Q}qkd_app")) == 201


def test_get_merges_augmented_state(store: Datastore) -> None:
    km = "qkdn-key-manager"
    state = {NODE: {"qkd_links": {"qkd_link": [{
        "qkdl_id": PHYS_ID,
        "qkdl_performance": {f"{km}:key_store": {"stored_key_bits": "4096",
                                                  "capacity_bits": "1000000"}},
    }]}}}
    data = store.get(None, state)
    km_ns = "urn:qkdn:yang:qkdn-key-manager"
    bits = data.find(f"{Q}qkd_node/{Q}qkd_links/{Q}qkd_link/{Q}qkdl_performance/"
                     f"{{{km_ns}}}key_store/{{{km_ns}}}stored_key_bits")
    assert bits is not None and bits.text == "4096"


def test_running_snapshot_is_the_listeners_view(store: Datastore) -> None:
    seen: list[dict[str, Any]] = []
    store.add_listener(lambda old, new: seen.append(new))
    before = store.running_snapshot()
    assert before == sample_config()
    store.edit_config(config("<qkdn_version>5</qkdn_version>"))
    assert seen[0] is store.running_snapshot()
    assert before == sample_config()  # the old snapshot was not modified
    assert store.running_json() == store.running_snapshot()


_KEYS = {"qkd_link": ("qkdl_id",), "qkd_app": ("app_id",), "qkd_interface": ("qkdi_id",),
         "phys_perf": ("perf_type",)}


@pytest.mark.parametrize(
    "body",
    [
        (f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link><qkdl_performance/>'
        "</qkd_link></qkd_links></qkd_node>"),
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_status/><qkd_interfaces/></qkd_node>',
        (f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>'
        "</qkd_link></qkd_links></qkd_node>"),
        (f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link>'
        f'<qkdl_type xmlns:t="{ETSI_TYPES_NS}">t:PHYS</qkdl_type><qkdl_performance><skr/>'
        "</qkdl_performance></qkd_link></qkd_links></qkd_node>"),
        (f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links><qkd_link><qkdl_performance><phys_perf/>'
        "</qkdl_performance></qkd_link><qkd_link><qkdl_enable/></qkd_link></qkd_links></qkd_node>"),
        ('<qkd_node xmlns=""><qkd_links><qkd_link><qkdl_performance/></qkd_link></qkd_links>'
        "</qkd_node>"),
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_id>{NODE_ID}</qkdn_id></qkd_node>',
    ],
)
def test_get_with_subtree_filter_equals_filtering_everything(store: Datastore, body: str) -> None:
    """The state pruned to the filter before merging gives what filtering all data gives."""
    from qkd_agent.subtree_filter import filter_subtree

    flt = subtree_filter(body)
    everything = store.get(None, operational_state())
    expected = filter_subtree(everything, flt, lambda e: _KEYS.get(etree.QName(e).localname, ()))
    got = store.get(flt, operational_state())
    assert [etree.tostring(e) for e in got] == [etree.tostring(e) for e in expected]
    assert len(got) > 0
