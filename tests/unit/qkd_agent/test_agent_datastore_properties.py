"""Property tests: random ETSI configurations survive XML/JSON round trips through the store,
an edit followed by its inverse restores the store, a rejected edit changes nothing."""

from __future__ import annotations

from typing import Any

import libyang
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.edit_operations import canonical_decimal
from qkd_agent.rpc_error import RpcError
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, NETCONF_BASE_NS

NODE = "etsi-qkd-sdn-node:qkd_node"
TYPES = "etsi-qkd-node-types"
SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


uuids = st.uuids().map(str)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)
text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_ ./", min_size=1, max_size=12)
# decimal64 with 3 fraction digits, in canonical form (what libyang prints back)
decimal = st.integers(min_value=0, max_value=99999).map(
    lambda n: canonical_decimal(f"{n // 1000}.{n % 1000:03d}"))


@st.composite
def links(draw: st.DrawFn) -> dict[str, Any]:
    link: dict[str, Any] = {"qkdl_id": draw(uuids)}
    if draw(st.booleans()):
        link["qkdl_enable"] = draw(st.booleans())
    kind = draw(st.sampled_from(["PHYS", "VIRT", None]))
    if kind:
        link["qkdl_type"] = f"{TYPES}:{kind}"
    if kind == "VIRT":
        link["virt_prev_hop"] = draw(uuids)
        link["virt_next_hop"] = draw(st.lists(uuids, min_size=1, max_size=3, unique=True))
        link["virt_bandwidth"] = draw(uint32)
    if kind == "PHYS":
        link["phys_channel_att"] = draw(decimal)
        link["phys_qkd_role"] = f"{TYPES}:{draw(st.sampled_from(['TRANSMITTER', 'RECEIVER']))}"
    return link


@st.composite
def apps(draw: st.DrawFn) -> dict[str, Any]:
    app: dict[str, Any] = {"app_id": draw(uuids)}
    if draw(st.booleans()):
        app["app_priority"] = draw(uint32)
    if draw(st.booleans()):
        app["client_app_id"] = draw(st.lists(text, min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        app["app_qos"] = {"max_bandwidth": draw(uint32), "jitter": draw(uint32)}
    return app


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = {"qkdn_id": draw(uuids)}
    if draw(st.booleans()):
        node["qkdn_location_id"] = draw(text)
    link_list = draw(st.lists(links(), max_size=4, unique_by=lambda x: x["qkdl_id"]))
    app_list = draw(st.lists(apps(), max_size=4, unique_by=lambda x: x["app_id"]))
    if link_list:
        node["qkd_links"] = {"qkd_link": link_list}
    if app_list:
        node["qkd_applications"] = {"qkd_app": app_list}
    return {NODE: node}


def as_config(data: etree._Element) -> etree._Element:
    config = etree.Element(f"{{{NETCONF_BASE_NS}}}config")
    for child in data:
        config.append(child)
    return config


@SETTINGS
@given(cfg=configs())
def test_json_and_xml_round_trip(ctx: libyang.Context, cfg: dict[str, Any]) -> None:
    store = Datastore(ctx, cfg)
    assert store.running_json() == cfg
    copy = Datastore(ctx)
    copy.edit_config(as_config(store.get_config()))
    assert copy.running_json() == cfg
    assert etree.tostring(copy.get_config()) == etree.tostring(store.get_config())


@SETTINGS
@given(cfg=configs(), app=apps())
def test_create_then_delete_restores(ctx: libyang.Context, cfg: dict[str, Any],
                                     app: dict[str, Any]) -> None:
    existing = {a["app_id"] for a in cfg[NODE].get("qkd_applications", {}).get("qkd_app", [])}
    if app["app_id"] in existing:
        return
    store = Datastore(ctx, cfg)
    app_xml = "".join(
        f"<{k}>{v}</{k}>" if not isinstance(v, (list, dict)) else
        ("".join(f"<{k}>{item}</{k}>" for item in v) if isinstance(v, list) else
         f"<{k}>" + "".join(f"<{kk}>{vv}</{kk}>" for kk, vv in v.items()) + f"</{k}>")
        for k, v in app.items()
    )
    store.edit_config(etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_applications><qkd_app nc:operation="create">'
        f"{app_xml}</qkd_app></qkd_applications></qkd_node></config>"))
    added = {a["app_id"]: a for a in store.running_json()[NODE]["qkd_applications"]["qkd_app"]}
    assert added[app["app_id"]] == app
    assert store.running_snapshot() == store.running_json()  # patched tree == snapshot
    store.edit_config(etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_applications><qkd_app nc:operation="delete">'
        f"<app_id>{app['app_id']}</app_id></qkd_app></qkd_applications></qkd_node></config>"))
    assert store.running_json() == cfg
    assert store.running_snapshot() == cfg


@SETTINGS
@given(cfg=configs(), bad=st.sampled_from([
    "<qkdn_id>zz</qkdn_id>",
    "<qkd_links><qkd_link><qkdl_id>x</qkdl_id></qkd_link></qkd_links>",
    "<qkd_interfaces><qkd_interface><qkdi_id>-3</qkdi_id></qkd_interface></qkd_interfaces>",
    '<qkdn_version nc:operation="delete"/><qkdn_location_id>ok</qkdn_location_id>',
]))
def test_rejected_edit_changes_nothing(ctx: libyang.Context, cfg: dict[str, Any],
                                       bad: str) -> None:
    store = Datastore(ctx, cfg)
    before_xml = etree.tostring(store.get_config())
    with pytest.raises(RpcError):
        store.edit_config(etree.fromstring(
            f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
            f'<qkd_node xmlns="{ETSI_NODE_NS}">{bad}</qkd_node></config>'))
    assert store.running_json() == cfg
    assert etree.tostring(store.get_config()) == before_xml
