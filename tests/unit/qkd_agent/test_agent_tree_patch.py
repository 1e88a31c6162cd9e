"""Edits build their candidate tree by patching a copy of the running tree; the result must
be exactly what a full parse of the candidate gives, and the full parse remains the fallback."""

from __future__ import annotations

from typing import Any

import libyang
import pytest
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.rpc_error import ErrorTag, RpcError
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
TYPES = "etsi-qkd-node-types"
NODE_ID = "11111111-1111-4111-8111-111111111111"
LINK = "33333333-3333-4333-8333-333333333333"
APP = "55555555-5555-4555-8555-555555555555"


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


def initial() -> dict[str, Any]:
    return {NODE: {
        "qkdn_id": NODE_ID,
        "qkd_applications": {"qkd_app": [{"app_id": APP, "app_qos": {"max_bandwidth": 5},
                                           "client_app_id": ["a", "b"]}]},
        "qkd_links": {"qkd_link": [{"qkdl_id": LINK, "qkdl_type": f"{TYPES}:VIRT",
                                    "virt_next_hop": [NODE_ID], "virt_bandwidth": 9}]},
    }}


@pytest.fixture
def store(ctx: libyang.Context, monkeypatch: pytest.MonkeyPatch) -> Datastore:
    """A store whose edits must not fall back to parsing the whole candidate."""
    store = Datastore(ctx, initial())

    def no_full_parse(candidate: dict[str, Any]) -> Any:
        raise AssertionError("fell back to a full parse")

    monkeypatch.setattr(store, "_validated", no_full_parse)
    return store


def edit(store: Datastore, body: str) -> None:
    store.edit_config(etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<qkd_node xmlns="{ETSI_NODE_NS}" xmlns:t="{ETSI_TYPES_NS}">{body}</qkd_node></config>'
    ))


def consistent(store: Datastore) -> dict[str, Any]:
    """The libyang tree (running_json) and the JSON snapshot say the same."""
    assert store.running_json() == store.running_snapshot()
    return store.running_json()[NODE]


@pytest.mark.parametrize(
    "body",
    [
        "<qkdn_version>2</qkdn_version>",  # new leaf
        (f"<qkd_links><qkd_link><qkdl_id>{LINK}</qkdl_id><virt_bandwidth>10</virt_bandwidth>"
        "</qkd_link></qkd_links>"),  # changed leaf in an entry
        (f"<qkd_links><qkd_link><qkdl_id>{APP}</qkdl_id><qkdl_type>t:PHYS</qkdl_type>"
        "<phys_wavelength>7</phys_wavelength></qkd_link></qkd_links>"),  # new entry
        (f'<qkd_links><qkd_link nc:operation="delete"><qkdl_id>{LINK}</qkdl_id></qkd_link>'
        "</qkd_links>"),  # removed entry (and list)
        (f"<qkd_applications><qkd_app><app_id>{APP}</app_id><client_app_id>c</client_app_id>"
        '<client_app_id nc:operation="delete">a</client_app_id></qkd_app></qkd_applications>'),
        (f"<qkd_applications><qkd_app><app_id>{APP}</app_id>"
        '<app_qos nc:operation="replace"><ttl>3</ttl></app_qos></qkd_app></qkd_applications>'),
        (f"<qkd_applications><qkd_app><app_id>{APP}</app_id><app_qos>"
        "<clients_shared_path_enable>false</clients_shared_path_enable></app_qos></qkd_app>"
        "</qkd_applications>"),  # explicit value where libyang holds an implicit default
        (f"<qkd_applications><qkd_app><app_id>{APP}</app_id>"
        '<km_session xmlns="urn:qkdn:yang:qkdn-key-manager"><role>relay</role></km_session>'
        "</qkd_app></qkd_applications>"),  # augmented container
        '<qkd_applications nc:operation="delete"/>',  # whole container
    ],
)
def test_patched_tree_matches_snapshot(store: Datastore, body: str) -> None:
    edit(store, body)
    consistent(store)


def test_sequence_of_edits_stays_consistent(store: Datastore) -> None:
    edit(store, "<qkdn_location_id>x</qkdn_location_id>")
    edit(store, f"<qkd_links><qkd_link><qkdl_id>{APP}</qkdl_id></qkd_link></qkd_links>")
    edit(store, '<qkdn_location_id nc:operation="delete"/>')
    edit(store, f"<qkd_links><qkd_link><qkdl_id>{APP}</qkdl_id><qkdl_enable>true</qkdl_enable>"
                "</qkd_link></qkd_links>")
    node = consistent(store)
    assert "qkdn_location_id" not in node
    assert len(node["qkd_links"]["qkd_link"]) == 2


def test_errors_in_patched_subtrees_have_absolute_paths(store: Datastore) -> None:
    with pytest.raises(RpcError) as exc:
        edit(store, "<qkd_links><qkd_link><qkdl_id>nope</qkdl_id></qkd_link></qkd_links>")
    assert exc.value.tag is ErrorTag.INVALID_VALUE
    assert exc.value.path == "/etsi-qkd-sdn-node:qkd_node/qkd_links/qkd_link/qkdl_id"
    consistent(store)


def test_key_with_a_quote_falls_back_to_a_full_parse(ctx: libyang.Context) -> None:
    store = Datastore(ctx, initial())
    edit(store, f"<qkd_applications><qkd_app><app_id>{APP}</app_id>"
                "<client_app_id>it's</client_app_id></qkd_app></qkd_applications>")
    edit(store, f"<qkd_applications><qkd_app><app_id>{APP}</app_id>"
                "<client_app_id nc:operation=\"delete\">it's</client_app_id></qkd_app>"
                "</qkd_applications>")
    assert consistent(store)["qkd_applications"]["qkd_app"][0]["client_app_id"] == ["a", "b"]


def test_changes_inside_an_augmented_container(store: Datastore) -> None:
    km = 'xmlns="urn:qkdn:yang:qkdn-key-manager"'
    for bucket in ("100", "200"):
        edit(store, f"<qkd_applications><qkd_app><app_id>{APP}</app_id>"
                    f"<km_session {km}><role>relay</role><token_bucket>"
                    f"<bucket_size>{bucket}</bucket_size></token_bucket></km_session>"
                    "</qkd_app></qkd_applications>")
    app = consistent(store)["qkd_applications"]["qkd_app"][0]
    assert app["qkdn-key-manager:km_session"]["token_bucket"] == {"bucket_size": 200}
    edit(store, f"<qkd_applications><qkd_app><app_id>{APP}</app_id>"
                f'<km_session {km}><role nc:operation="delete"/></km_session>'
                "</qkd_app></qkd_applications>")
    assert "role" not in consistent(store)["qkd_applications"]["qkd_app"][0][
        "qkdn-key-manager:km_session"]
