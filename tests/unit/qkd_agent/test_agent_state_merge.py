"""Merging operational XML into configuration XML by schema identity."""

from __future__ import annotations

import libyang
import pytest
from lxml import etree

from qkd_agent.schema_tree import SchemaTree, build_schema_tree
from qkd_agent.state_merge import merge_state
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS

Q = f"{{{ETSI_NODE_NS}}}"


@pytest.fixture(scope="module")
def schema() -> SchemaTree:
    ctx: libyang.Context = load_context()
    return build_schema_tree(ctx)


def data(body: str) -> etree._Element:
    return etree.fromstring(f'<data><qkd_node xmlns="{ETSI_NODE_NS}">{body}</qkd_node></data>')


def test_entries_matched_by_key_and_new_ones_appended(schema: SchemaTree) -> None:
    config = data("<qkdn_id>n</qkdn_id><qkd_links>"
                  "<qkd_link><qkdl_id>a</qkdl_id><qkdl_enable>true</qkdl_enable></qkd_link>"
                  "<qkd_link><qkdl_id>b</qkdl_id></qkd_link></qkd_links>")
    state = data("<qkdn_status>up</qkdn_status><qkd_links>"
                 "<qkd_link><qkdl_id>b</qkdl_id><qkdl_performance><skr>5</skr>"
                 "</qkdl_performance></qkd_link>"
                 "<qkd_link><qkdl_id>c</qkdl_id><qkdl_status>x</qkdl_status></qkd_link>"
                 "</qkd_links>")
    merge_state(config, state, schema.root)
    (node,) = config
    assert node.findtext(f"{Q}qkdn_status") == "up"
    links = node.findall(f"{Q}qkd_links/{Q}qkd_link")
    assert [link.findtext(f"{Q}qkdl_id") for link in links] == ["a", "b", "c"]
    assert links[1].findtext(f"{Q}qkdl_performance/{Q}skr") == "5"
    assert links[0].findtext(f"{Q}qkdl_enable") == "true"
    assert len(config.findall(f".//{Q}qkd_links")) == 1


def test_state_leaf_value_wins_and_leaf_lists_union(schema: SchemaTree) -> None:
    config = data("<qkd_links><qkd_link><qkdl_id>a</qkdl_id><qkdl_status>PENDING</qkdl_status>"
                  "<qkdl_applications>u1</qkdl_applications></qkd_link></qkd_links>")
    state = data("<qkd_links><qkd_link><qkdl_id>a</qkdl_id><qkdl_status>ACTIVE</qkdl_status>"
                 "<qkdl_applications>u1</qkdl_applications>"
                 "<qkdl_applications>u2</qkdl_applications></qkd_link></qkd_links>")
    merge_state(config, state, schema.root)
    link = config.find(f".//{Q}qkd_link")
    assert link.findtext(f"{Q}qkdl_status") == "ACTIVE"
    assert [e.text for e in link.findall(f"{Q}qkdl_applications")] == ["u1", "u2"]
    assert [e.text for e in link.findall(f"{Q}qkdl_id")] == ["a"]
