"""The edit walk's error paths (written only when an error occurs) name the failing node
exactly: module prefix where the module changes, list keys, leaf-list values, the key
leaf of an entry whose key is bad; alone and when continue-on-error collects several."""

from __future__ import annotations

import libyang
import pytest
from lxml import etree

from qkd_agent.edit_operations import DefaultOperation, apply_edit
from qkd_agent.rpc_error import ErrorTag, RpcError
from qkd_agent.schema_tree import SchemaTree, build_schema_tree
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
KM_NS = "urn:qkdn:yang:qkdn-key-manager"
NODE_ID = "11111111-1111-4111-8111-111111111111"
LINK_ID = "33333333-3333-4333-8333-333333333333"
APP_ID = "55555555-5555-4555-8555-555555555555"
RUNNING = {NODE: {"qkdn_id": NODE_ID,
                  "qkd_applications": {"qkd_app": [{"app_id": APP_ID,
                                                    "client_app_id": ["sae-a"]}]}}}
ROOT = "/etsi-qkd-sdn-node:qkd_node"


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


@pytest.fixture(scope="module")
def schema(ctx: libyang.Context) -> SchemaTree:
    return build_schema_tree(ctx)


def config(body: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<qkd_node xmlns="{ETSI_NODE_NS}" xmlns:t="{ETSI_TYPES_NS}" xmlns:km="{KM_NS}">'
        f"{body}</qkd_node></config>")


def app(body: str, op: str = "") -> str:
    attribute = f' nc:operation="{op}"' if op else ""
    return (f"<qkd_applications><qkd_app{attribute}><app_id>{APP_ID}</app_id>{body}"
            "</qkd_app></qkd_applications>")


CASES = [
    # a plain leaf with a bad number (set by the children loop itself)
    (app("<app_priority>high</app_priority>"), ErrorTag.INVALID_VALUE,
     f"{ROOT}/qkd_applications/qkd_app[app_id='{APP_ID}']/app_priority"),
    # the same leaf with an attribute (through apply_node)
    (app('<app_priority nc:operation="merge">high</app_priority>'), ErrorTag.INVALID_VALUE,
     f"{ROOT}/qkd_applications/qkd_app[app_id='{APP_ID}']/app_priority"),
    # a key that does not parse: the key leaf under the list, without predicates
    (("<qkd_interfaces><qkd_interface><qkdi_id>one</qkdi_id></qkd_interface>"
     "</qkd_interfaces>"), ErrorTag.INVALID_VALUE,
     f"{ROOT}/qkd_interfaces/qkd_interface/qkdi_id"),
    # an entry without its key
    ("<qkd_links><qkd_link><qkdl_enable>true</qkdl_enable></qkd_link></qkd_links>",
     ErrorTag.MISSING_ELEMENT, f"{ROOT}/qkd_links/qkd_link"),
    # a leaf-list value that is not there
    (app('<client_app_id nc:operation="delete">sae-b</client_app_id>'), ErrorTag.DATA_MISSING,
     f"{ROOT}/qkd_applications/qkd_app[app_id='{APP_ID}']/client_app_id[.='sae-b']"),
    # an element the model does not have, and one in an unknown namespace
    ("<qkd_links><warp_drive/></qkd_links>", ErrorTag.UNKNOWN_ELEMENT,
     f"{ROOT}/qkd_links/warp_drive"),
    ('<qkd_links><x:y xmlns:x="urn:nowhere"/></qkd_links>', ErrorTag.UNKNOWN_NAMESPACE,
     f"{ROOT}/qkd_links/y"),
    # a node of another module (augment): its step carries the module prefix
    (app("<km:km_session><km:idle_timeout>soon</km:idle_timeout></km:km_session>"),
     ErrorTag.INVALID_VALUE,
     (f"{ROOT}/qkd_applications/qkd_app[app_id='{APP_ID}']/qkdn-key-manager:km_session/"
     "idle_timeout")),
    # delete of an absent entry: the entry's path with its key
    (("<qkd_links><qkd_link nc:operation='delete'>"
     f"<qkdl_id>{LINK_ID}</qkdl_id></qkd_link></qkd_links>"), ErrorTag.DATA_MISSING,
     f"{ROOT}/qkd_links/qkd_link[qkdl_id='{LINK_ID}']"),
    # an unknown operation value on a leaf
    ('<qkdn_location_id nc:operation="frobnicate">x</qkdn_location_id>',
     ErrorTag.BAD_ATTRIBUTE, f"{ROOT}/qkdn_location_id"),
]


@pytest.mark.parametrize(("body", "tag", "path"), CASES)
def test_error_path(schema: SchemaTree, body: str, tag: ErrorTag, path: str) -> None:
    with pytest.raises(RpcError) as exc:
        apply_edit(RUNNING, config(body), schema, DefaultOperation.MERGE)
    assert (exc.value.tag, exc.value.path) == (tag, path)


def test_continue_on_error_reports_each_path(schema: SchemaTree) -> None:
    body = "".join(body for body, _, _ in CASES)
    _, errors = apply_edit(RUNNING, config(body), schema, DefaultOperation.MERGE,
                           collect_errors=True)
    assert [(e.tag, e.path) for e in errors] == [(tag, path) for _, tag, path in CASES]
