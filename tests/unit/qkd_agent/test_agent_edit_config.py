"""<edit-config> on the ETSI model: every operation and option, every error with the
datastore left unchanged."""

from __future__ import annotations

from typing import Any

import libyang
import pytest
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.edit_operations import RpcErrors
from qkd_agent.rpc_error import ErrorTag, RpcError
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
TYPES = "etsi-qkd-node-types"
NODE_ID = "11111111-1111-4111-8111-111111111111"
PEER_ID = "22222222-2222-4222-8222-222222222222"
PHYS_ID = "33333333-3333-4333-8333-333333333333"
VIRT_ID = "44444444-4444-4444-8444-444444444444"
APP_ID = "55555555-5555-4555-8555-555555555555"
NEW_ID = "66666666-6666-4666-8666-666666666666"
NC = f'xmlns:nc="{NETCONF_BASE_NS}"'
T = f'xmlns:t="{ETSI_TYPES_NS}"'


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


def initial() -> dict[str, Any]:
    return {
        NODE: {
            "qkdn_id": NODE_ID,
            "qkdn_location_id": "lab-A",
            "qkdn_capabilities": {"link_stats_support": True},
            "qkd_applications": {"qkd_app": [{
                "app_id": APP_ID,
                "app_priority": 3,
                "client_app_id": ["sae://bob"],
                "app_qos": {"max_bandwidth": 64000, "min_bandwidth": 1000},
            }]},
            "qkd_links": {"qkd_link": [
                {"qkdl_id": PHYS_ID, "qkdl_type": f"{TYPES}:PHYS", "phys_channel_att": "4.2",
                 "qkdl_enable": True},
                {"qkdl_id": VIRT_ID, "qkdl_type": f"{TYPES}:VIRT", "virt_bandwidth": 5000},
            ]},
        }
    }


@pytest.fixture
def store(ctx: libyang.Context) -> Datastore:
    return Datastore(ctx, initial())


def config(body: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" {NC}><qkd_node xmlns="{ETSI_NODE_NS}" {T}>{body}'
        "</qkd_node></config>"
    )


def node(store: Datastore) -> dict[str, Any]:
    return store.running_json()[NODE]


def links(store: Datastore) -> dict[str, dict[str, Any]]:
    return {link["qkdl_id"]: link for link in node(store)["qkd_links"]["qkd_link"]}


def apps(store: Datastore) -> dict[str, dict[str, Any]]:
    return {app["app_id"]: app for app in node(store)["qkd_applications"]["qkd_app"]}


def rejected(store: Datastore, cfg: etree._Element, **options: str) -> RpcError:
    """Apply an edit that must fail; check the datastore did not move and nobody was told."""
    before = store.running_json()
    told: list[Any] = []
    store.add_listener(lambda old, new: told.append(new))
    with pytest.raises(RpcError) as exc:
        store.edit_config(cfg, **options)
    assert store.running_json() == before
    assert told == []
    return exc.value


# ---------------------------------------------------------------- operations
def test_merge_adds_an_application_and_a_virtual_link(store: Datastore) -> None:
    store.edit_config(config(
        f"<qkd_applications><qkd_app><app_id>{NEW_ID}</app_id><app_priority>7</app_priority>"
        f"<app_type>t:CLIENT</app_type><backing_qkdl_id>{NEW_ID}</backing_qkdl_id>"
        "<app_qos><max_bandwidth>1000</max_bandwidth></app_qos></qkd_app></qkd_applications>"
        f"<qkd_links><qkd_link><qkdl_id>{NEW_ID}</qkdl_id><qkdl_type>t:VIRT</qkdl_type>"
        f"<virt_prev_hop>{PEER_ID}</virt_prev_hop><virt_next_hop>{NODE_ID}</virt_next_hop>"
        "<virt_bandwidth>2000</virt_bandwidth></qkd_link></qkd_links>"
    ))
    assert apps(store)[NEW_ID]["app_type"] == f"{TYPES}:CLIENT"
    assert apps(store)[APP_ID]["app_priority"] == 3  # untouched sibling
    virt = links(store)[NEW_ID]
    assert virt["virt_prev_hop"] == PEER_ID
    assert virt["virt_next_hop"] == [NODE_ID]
    assert virt["virt_bandwidth"] == 2000


def test_merge_into_existing_entry_keeps_other_leaves(store: Datastore) -> None:
    store.edit_config(config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        "<app_qos><jitter>5</jitter></app_qos></qkd_app></qkd_applications>"
    ))
    assert apps(store)[APP_ID]["app_qos"] == {
        "max_bandwidth": 64000, "min_bandwidth": 1000, "jitter": 5}
    assert apps(store)[APP_ID]["app_priority"] == 3


def test_replace_list_entry_drops_omitted_leaves(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_applications><qkd_app nc:operation="replace"><app_id>{APP_ID}</app_id>'
        "<app_priority>9</app_priority></qkd_app></qkd_applications>"
    ))
    assert apps(store)[APP_ID] == {"app_id": APP_ID, "app_priority": 9}


def test_replace_container(store: Datastore) -> None:
    store.edit_config(config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        '<app_qos nc:operation="replace"><ttl>60</ttl></app_qos></qkd_app></qkd_applications>'
    ))
    assert apps(store)[APP_ID]["app_qos"] == {"ttl": 60}


def test_replace_leaf_list_parent_replaces_the_set(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_applications><qkd_app nc:operation="replace"><app_id>{APP_ID}</app_id>'
        "<client_app_id>sae://carol</client_app_id><client_app_id>sae://dan</client_app_id>"
        "</qkd_app></qkd_applications>"
    ))
    assert apps(store)[APP_ID]["client_app_id"] == ["sae://carol", "sae://dan"]


def test_create_new_entry(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_links><qkd_link nc:operation="create"><qkdl_id>{NEW_ID}</qkdl_id>'
        "<qkdl_type>t:PHYS</qkdl_type><phys_wavelength>31</phys_wavelength></qkd_link></qkd_links>"
    ))
    assert links(store)[NEW_ID]["phys_wavelength"] == "31"


def test_create_existing_entry_is_data_exists(store: Datastore) -> None:
    err = rejected(store, config(
        f'<qkd_links><qkd_link nc:operation="create"><qkdl_id>{PHYS_ID}</qkdl_id></qkd_link>'
        "</qkd_links>"
    ))
    assert err.tag is ErrorTag.DATA_EXISTS
    assert err.path == (f"/etsi-qkd-sdn-node:qkd_node/qkd_links/qkd_link[qkdl_id='{PHYS_ID}']")
    assert err.info["bad-element"] == "qkd_link"


def test_create_existing_leaf_is_data_exists(store: Datastore) -> None:
    err = rejected(store, config('<qkdn_location_id nc:operation="create">x</qkdn_location_id>'))
    assert err.tag is ErrorTag.DATA_EXISTS
    assert err.path == "/etsi-qkd-sdn-node:qkd_node/qkdn_location_id"


def test_create_leaf_list_value_twice_is_data_exists(store: Datastore) -> None:
    err = rejected(store, config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        '<client_app_id nc:operation="create">sae://bob</client_app_id>'
        "</qkd_app></qkd_applications>"
    ))
    assert err.tag is ErrorTag.DATA_EXISTS
    assert err.path.endswith("client_app_id[.='sae://bob']")


def test_delete_entry(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_links><qkd_link nc:operation="delete"><qkdl_id>{VIRT_ID}</qkdl_id></qkd_link>'
        "</qkd_links>"
    ))
    assert set(links(store)) == {PHYS_ID}


def test_delete_last_entry_removes_the_list(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_applications><qkd_app nc:operation="delete"><app_id>{APP_ID}</app_id></qkd_app>'
        "</qkd_applications>"
    ))
    assert "qkd_applications" not in node(store)


def test_delete_missing_entry_is_data_missing(store: Datastore) -> None:
    err = rejected(store, config(
        f'<qkd_links><qkd_link nc:operation="delete"><qkdl_id>{NEW_ID}</qkdl_id></qkd_link>'
        "</qkd_links>"
    ))
    assert err.tag is ErrorTag.DATA_MISSING
    assert NEW_ID in err.path


def test_delete_leaf_and_missing_leaf(store: Datastore) -> None:
    store.edit_config(config('<qkdn_location_id nc:operation="delete"/>'))
    assert "qkdn_location_id" not in node(store)
    err = rejected(store, config('<qkdn_version nc:operation="delete"/>'))
    assert err.tag is ErrorTag.DATA_MISSING
    assert err.info["bad-element"] == "qkdn_version"


def test_delete_leaf_list_value(store: Datastore) -> None:
    store.edit_config(config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        '<client_app_id nc:operation="delete">sae://bob</client_app_id>'
        "</qkd_app></qkd_applications>"
    ))
    assert "client_app_id" not in apps(store)[APP_ID]
    err = rejected(store, config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        '<client_app_id nc:operation="delete">sae://zed</client_app_id>'
        "</qkd_app></qkd_applications>"
    ))
    assert err.tag is ErrorTag.DATA_MISSING


def test_delete_container(store: Datastore) -> None:
    store.edit_config(config('<qkdn_capabilities nc:operation="delete"/>'))
    assert "qkdn_capabilities" not in node(store)


def test_remove_is_silent_when_missing(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_links><qkd_link nc:operation="remove"><qkdl_id>{NEW_ID}</qkdl_id></qkd_link>'
        '</qkd_links><qkdn_version nc:operation="remove"/>'
    ))
    assert node(store) == initial()[NODE]
    store.edit_config(config(
        f'<qkd_links><qkd_link nc:operation="remove"><qkdl_id>{PHYS_ID}</qkdl_id></qkd_link>'
        "</qkd_links>"
    ))
    assert set(links(store)) == {VIRT_ID}


def test_operation_on_top_node_replace(store: Datastore) -> None:
    store.edit_config(config('<qkdn_id nc:operation="replace">' + NODE_ID + "</qkdn_id>"))
    assert node(store) == initial()[NODE]
    cfg = etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" {NC}><qkd_node xmlns="{ETSI_NODE_NS}"'
        f' nc:operation="replace"><qkdn_id>{NEW_ID}</qkdn_id></qkd_node></config>'
    )
    store.edit_config(cfg)
    assert store.running_json() == {NODE: {"qkdn_id": NEW_ID}}


def test_delete_inside_merge_and_create_inside_merge(store: Datastore) -> None:
    store.edit_config(config(
        f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>"
        '<phys_channel_att nc:operation="delete"/>'
        '<phys_wavelength nc:operation="create">40</phys_wavelength></qkd_link></qkd_links>'
    ))
    assert links(store)[PHYS_ID] == {
        "qkdl_id": PHYS_ID, "qkdl_type": f"{TYPES}:PHYS", "qkdl_enable": True,
        "phys_wavelength": "40"}


def test_merge_inside_delete_is_bad_attribute(store: Datastore) -> None:
    err = rejected(store, config(
        f'<qkd_links><qkd_link nc:operation="delete"><qkdl_id>{PHYS_ID}</qkdl_id>'
        '<qkdl_enable nc:operation="merge">false</qkdl_enable></qkd_link></qkd_links>'
    ))
    assert err.tag is ErrorTag.BAD_ATTRIBUTE


# -------------------------------------------------------------- options
def test_default_operation_none_changes_nothing_without_operations(store: Datastore) -> None:
    store.edit_config(config("<qkdn_location_id>lab-Z</qkdn_location_id>"),
                      default_operation="none")
    assert node(store)["qkdn_location_id"] == "lab-A"


def test_default_operation_none_applies_explicit_operations(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_links><qkd_link><qkdl_id>{VIRT_ID}</qkdl_id><virt_bandwidth>1</virt_bandwidth>'
        f'</qkd_link><qkd_link nc:operation="delete"><qkdl_id>{PHYS_ID}</qkdl_id></qkd_link>'
        '</qkd_links><qkdn_version nc:operation="merge">2.1</qkdn_version>'
    ), default_operation="none")
    assert set(links(store)) == {VIRT_ID}
    assert links(store)[VIRT_ID]["virt_bandwidth"] == 5000  # no operation: untouched
    assert node(store)["qkdn_version"] == "2.1"


def test_default_operation_none_does_not_create_empty_parents(store: Datastore) -> None:
    store.edit_config(config(
        "<qkd_interfaces><qkd_interface><qkdi_id>3</qkdi_id></qkd_interface></qkd_interfaces>"
    ), default_operation="none")
    assert "qkd_interfaces" not in node(store)


def test_default_operation_none_delete_of_missing_is_data_missing(store: Datastore) -> None:
    err = rejected(store, config(
        '<qkd_interfaces><qkd_interface><qkdi_id>3</qkdi_id><qkdi_model nc:operation="delete"/>'
        "</qkd_interface></qkd_interfaces>"
    ), default_operation="none")
    assert err.tag is ErrorTag.DATA_MISSING


def test_default_operation_replace_replaces_everything(store: Datastore) -> None:
    store.edit_config(config(f"<qkdn_id>{NODE_ID}</qkdn_id><qkdn_version>3</qkdn_version>"),
                      default_operation="replace")
    assert store.running_json() == {NODE: {"qkdn_id": NODE_ID, "qkdn_version": "3"}}


@pytest.mark.parametrize(
    ("option", "value"),
    [("default_operation", "delete"), ("test_option", "maybe"), ("error_option", "ignore")],
)
def test_unknown_option_value_is_invalid_value(store: Datastore, option: str, value: str) -> None:
    err = rejected(store, config("<qkdn_version>9</qkdn_version>"), **{option: value})
    assert err.tag is ErrorTag.INVALID_VALUE
    assert err.info["bad-element"] == option.replace("_", "-")


def test_test_only_validates_without_applying(store: Datastore) -> None:
    store.edit_config(config("<qkdn_version>9</qkdn_version>"), test_option="test-only")
    assert "qkdn_version" not in node(store)
    err = rejected(store, config("<qkdn_id>not-a-uuid</qkdn_id>"), test_option="test-only")
    assert err.tag is ErrorTag.INVALID_VALUE


def test_set_and_test_then_set_apply(store: Datastore) -> None:
    store.edit_config(config("<qkdn_version>1</qkdn_version>"), test_option="set")
    assert node(store)["qkdn_version"] == "1"
    store.edit_config(config("<qkdn_version>2</qkdn_version>"), test_option="test-then-set")
    assert node(store)["qkdn_version"] == "2"
    err = rejected(store, config("<qkdn_id>x</qkdn_id>"), test_option="set")
    assert err.tag is ErrorTag.INVALID_VALUE


@pytest.mark.parametrize("error_option", ["stop-on-error", "rollback-on-error"])
def test_error_options_are_all_or_nothing(store: Datastore, error_option: str) -> None:
    err = rejected(store, config(
        "<qkdn_version>7</qkdn_version>"
        f'<qkd_links><qkd_link nc:operation="create"><qkdl_id>{PHYS_ID}</qkdl_id></qkd_link>'
        "</qkd_links><qkdn_location_id>later</qkdn_location_id>"
    ), error_option=error_option)
    assert err.tag is ErrorTag.DATA_EXISTS


def test_continue_on_error_reports_every_error_and_applies_nothing(store: Datastore) -> None:
    err = rejected(store, config(
        "<qkdn_version>7</qkdn_version>"
        f'<qkd_links><qkd_link nc:operation="create"><qkdl_id>{PHYS_ID}</qkdl_id></qkd_link>'
        f'<qkd_link nc:operation="delete"><qkdl_id>{NEW_ID}</qkdl_id></qkd_link></qkd_links>'
        "<bogus/>"
    ), error_option="continue-on-error")
    assert isinstance(err, RpcErrors)
    assert [e.tag for e in err.errors] == [
        ErrorTag.DATA_EXISTS, ErrorTag.DATA_MISSING, ErrorTag.UNKNOWN_ELEMENT]
    assert err.tag is ErrorTag.DATA_EXISTS
    assert len(err.to_xml_list()) == 3


def test_continue_on_error_without_errors_applies(store: Datastore) -> None:
    store.edit_config(config("<qkdn_version>7</qkdn_version>"), error_option="continue-on-error")
    assert node(store)["qkdn_version"] == "7"


# --------------------------------------------------------- validation errors
def test_virtual_link_leaves_accepted_on_virt_link(store: Datastore) -> None:
    store.edit_config(config(
        f"<qkd_links><qkd_link><qkdl_id>{VIRT_ID}</qkdl_id>"
        f"<virt_prev_hop>{PEER_ID}</virt_prev_hop><virt_next_hop>{NODE_ID}</virt_next_hop>"
        f"<virt_next_hop>{NEW_ID}</virt_next_hop><virt_bandwidth>42</virt_bandwidth>"
        "</qkd_link></qkd_links>"
    ))
    virt = links(store)[VIRT_ID]
    assert virt["virt_next_hop"] == [NODE_ID, NEW_ID]
    assert virt["virt_bandwidth"] == 42


@pytest.mark.parametrize("leaf", ["virt_prev_hop", "virt_next_hop", "virt_bandwidth"])
def test_virtual_link_leaves_rejected_on_phys_link(store: Datastore, leaf: str) -> None:
    value = "7" if leaf == "virt_bandwidth" else PEER_ID
    err = rejected(store, config(
        f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id><{leaf}>{value}</{leaf}>"
        "</qkd_link></qkd_links>"
    ))
    assert err.tag is ErrorTag.UNKNOWN_ELEMENT  # RFC 7950 §8.3.1: when is false
    assert err.path.startswith(f"/etsi-qkd-sdn-node:qkd_node/qkd_links/qkd_link[qkdl_id='{PHYS_ID}']/{leaf}")
    assert err.info["bad-element"] == leaf


def test_phys_leaves_rejected_on_virt_link(store: Datastore) -> None:
    err = rejected(store, config(
        f"<qkd_links><qkd_link><qkdl_id>{VIRT_ID}</qkdl_id>"
        "<phys_channel_att>1.5</phys_channel_att></qkd_link></qkd_links>"
    ))
    assert err.tag is ErrorTag.UNKNOWN_ELEMENT


def test_changing_link_type_with_virt_leaves_left_is_rejected(store: Datastore) -> None:
    err = rejected(store, config(
        f"<qkd_links><qkd_link><qkdl_id>{VIRT_ID}</qkdl_id><qkdl_type>t:PHYS</qkdl_type>"
        "</qkd_link></qkd_links>"
    ))
    assert err.tag is ErrorTag.UNKNOWN_ELEMENT


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        ("<qkdn_id>not-a-uuid</qkdn_id>", "qkdn_id"),  # pattern
        ((f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id><qkdl_enable>maybe</qkdl_enable>"
         "</qkd_link></qkd_links>"), "qkdl_enable"),  # boolean
        ((f"<qkd_links><qkd_link><qkdl_id>{VIRT_ID}</qkdl_id>"
         "<virt_bandwidth>4294967296</virt_bandwidth></qkd_link></qkd_links>"),
         "virt_bandwidth"),  # range
        ((f"<qkd_links><qkd_link><qkdl_id>{VIRT_ID}</qkdl_id>"
         "<virt_bandwidth>-1</virt_bandwidth></qkd_link></qkd_links>"), "virt_bandwidth"),
        ((f"<qkd_links><qkd_link><qkdl_id>{VIRT_ID}</qkdl_id>"
         "<virt_bandwidth>fast</virt_bandwidth></qkd_link></qkd_links>"), "virt_bandwidth"),
        ((f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>"
         "<phys_channel_att>1.23456</phys_channel_att></qkd_link></qkd_links>"),
         "phys_channel_att"),  # decimal64 fraction digits
        ((f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>"
         "<qkdl_type>t:WORMHOLE</qkdl_type></qkd_link></qkd_links>"), "qkdl_type"),  # identity
        ((f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>"
         "<qkdl_type>t:TRANSMITTER</qkdl_type></qkd_link></qkd_links>"),
         "qkdl_type"),  # identity of another base
        ((f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>"
         "<qkdl_type>zz:PHYS</qkdl_type></qkd_link></qkd_links>"), "qkdl_type"),  # prefix
        ((f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id>"
         "<qkdl_type>PHYS</qkdl_type></qkd_link></qkd_links>"), "qkdl_type"),  # unqualified
        ("<qkd_links><qkd_link><qkdl_id>nope</qkdl_id></qkd_link></qkd_links>",
         "qkdl_id"),  # key type
    ],
)
def test_bad_values_are_invalid_value(store: Datastore, body: str, bad: str) -> None:
    err = rejected(store, config(body))
    assert err.tag is ErrorTag.INVALID_VALUE
    assert err.info["bad-element"] == bad
    assert err.path and err.path.startswith("/etsi-qkd-sdn-node:qkd_node")


def test_identityref_with_any_prefix_is_accepted(store: Datastore) -> None:
    store.edit_config(config(
        f'<qkd_links><qkd_link><qkdl_id>{NEW_ID}</qkdl_id>'
        f'<qkdl_type xmlns:other="{ETSI_TYPES_NS}">other:VIRT</qkdl_type>'
        "</qkd_link></qkd_links>"
    ))
    assert links(store)[NEW_ID]["qkdl_type"] == f"{TYPES}:VIRT"


def test_deleting_mandatory_leaf_is_missing_element(store: Datastore) -> None:
    err = rejected(store, config('<qkdn_id nc:operation="delete"/>'))
    assert err.tag is ErrorTag.MISSING_ELEMENT
    assert err.path == "/etsi-qkd-sdn-node:qkd_node/qkdn_id"
    assert err.info["bad-element"] == "qkdn_id"


def test_list_entry_without_key_is_missing_element(store: Datastore) -> None:
    err = rejected(store, config(
        "<qkd_links><qkd_link><virt_bandwidth>1</virt_bandwidth></qkd_link></qkd_links>"
    ))
    assert err.tag is ErrorTag.MISSING_ELEMENT
    assert err.info["bad-element"] == "qkdl_id"


def test_unknown_element_is_unknown_element(store: Datastore) -> None:
    err = rejected(store, config("<qkd_links><warp_drive/></qkd_links>"))
    assert err.tag is ErrorTag.UNKNOWN_ELEMENT
    assert err.info["bad-element"] == "warp_drive"
    assert err.path == "/etsi-qkd-sdn-node:qkd_node/qkd_links/warp_drive"


def test_element_in_wrong_namespace_is_unknown_namespace(store: Datastore) -> None:
    err = rejected(store, etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}"><qkd_node xmlns="urn:example:elsewhere">'
        f"<qkdn_id>{NODE_ID}</qkdn_id></qkd_node></config>"
    ))
    assert err.tag is ErrorTag.UNKNOWN_NAMESPACE
    assert err.info == {"bad-element": "qkd_node", "bad-namespace": "urn:example:elsewhere"}


def test_child_in_types_namespace_is_unknown_element(store: Datastore) -> None:
    err = rejected(store, config(f'<qkdn_version xmlns="{ETSI_TYPES_NS}">1</qkdn_version>'))
    assert err.tag is ErrorTag.UNKNOWN_ELEMENT


@pytest.mark.parametrize(
    "body",
    [
        "<qkdn_status>t:OPERATING</qkdn_status>",
        (f"<qkd_links><qkd_link><qkdl_id>{PHYS_ID}</qkdl_id><qkdl_performance><skr>1</skr>"
        "</qkdl_performance></qkd_link></qkd_links>"),
        (f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        "<creation_time>2026-01-01T00:00:00Z</creation_time></qkd_app></qkd_applications>"),
    ],
)
def test_config_false_nodes_are_rejected(store: Datastore, body: str) -> None:
    err = rejected(store, config(body))
    assert err.tag is ErrorTag.BAD_ELEMENT
    assert "config false" in err.message


def test_leaf_with_children_is_bad_element(store: Datastore) -> None:
    err = rejected(store, config("<qkdn_version><major>1</major></qkdn_version>"))
    assert err.tag is ErrorTag.BAD_ELEMENT


def test_unknown_operation_is_bad_attribute(store: Datastore) -> None:
    err = rejected(store, config('<qkdn_version nc:operation="upsert">1</qkdn_version>'))
    assert err.tag is ErrorTag.BAD_ATTRIBUTE
    assert err.info == {"bad-element": "qkdn_version", "bad-attribute": "operation"}


def test_unknown_attribute_is_unknown_attribute(store: Datastore) -> None:
    err = rejected(store, config('<qkdn_version colour="red">1</qkdn_version>'))
    assert err.tag is ErrorTag.UNKNOWN_ATTRIBUTE


@pytest.mark.parametrize(
    "xml",
    [
        f'<edit xmlns="{NETCONF_BASE_NS}"/>',
        '<config xmlns="urn:example:not-netconf"/>',
        f'<config xmlns="{NETCONF_BASE_NS}">stray text</config>',
    ],
)
def test_not_a_config_element_is_malformed_message(store: Datastore, xml: str) -> None:
    err = rejected(store, etree.fromstring(xml))
    assert err.tag is ErrorTag.MALFORMED_MESSAGE


def test_error_serialises_as_rpc_error(store: Datastore) -> None:
    err = rejected(store, config('<qkdn_version nc:operation="delete"/>'))
    xml = err.to_xml()
    q = f"{{{NETCONF_BASE_NS}}}"
    assert xml.findtext(f"{q}error-tag") == "data-missing"
    assert xml.findtext(f"{q}error-path") == "/etsi-qkd-sdn-node:qkd_node/qkdn_version"
    assert xml.findtext(f"{q}error-info/{q}bad-element") == "qkdn_version"


def test_first_edit_on_empty_store_needs_qkdn_id(ctx: libyang.Context) -> None:
    store = Datastore(ctx)
    err = rejected(store, config("<qkdn_version>1</qkdn_version>"))
    assert err.tag is ErrorTag.MISSING_ELEMENT
    store.edit_config(config(f"<qkdn_id>{NODE_ID}</qkdn_id>"))
    assert store.running_json() == {NODE: {"qkdn_id": NODE_ID}}


# ------------------------------------------- our augmentations (qkdn-key-manager)
KM_NS = "urn:qkdn:yang:qkdn-key-manager"


def test_augmented_km_session_is_edited_in_its_namespace(store: Datastore) -> None:
    store.edit_config(config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        f'<km_session xmlns="{KM_NS}"><role>source</role>'
        "<token_bucket><bucket_size>4096</bucket_size><token_rate>1000</token_rate>"
        "</token_bucket></km_session></qkd_app></qkd_applications>"
        f'<key_manager xmlns="{KM_NS}"><key_store_capacity>1000000</key_store_capacity>'
        "</key_manager>"
    ))
    session = apps(store)[APP_ID]["qkdn-key-manager:km_session"]
    assert session["role"] == "source"
    assert session["token_bucket"] == {"bucket_size": 4096, "token_rate": 1000}
    assert node(store)["qkdn-key-manager:key_manager"] == {"key_store_capacity": "1000000"}
    err = rejected(store, config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        f'<km_session xmlns="{KM_NS}"><role>sink</role></km_session></qkd_app>'
        "</qkd_applications>"))
    assert err.tag is ErrorTag.INVALID_VALUE  # not an enum of km-role
    err = rejected(store, config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id>"
        f'<km_session xmlns="{KM_NS}"><state>open</state></km_session></qkd_app>'
        "</qkd_applications>"))
    assert err.tag is ErrorTag.BAD_ELEMENT  # config false


def test_augmented_node_in_the_base_namespace_is_unknown(store: Datastore) -> None:
    err = rejected(store, config(
        f"<qkd_applications><qkd_app><app_id>{APP_ID}</app_id><km_session/></qkd_app>"
        "</qkd_applications>"))
    assert err.tag is ErrorTag.UNKNOWN_ELEMENT
