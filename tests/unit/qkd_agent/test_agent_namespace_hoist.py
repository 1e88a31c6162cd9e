"""Namespace declarations of a reply hoisted to its top-level nodes."""

from lxml import etree

from qkd_agent.namespace_hoist import hoist_namespaces, module_prefixes, used_prefixes

T = "urn:example:types"
N = "urn:example:node"
XML = (f'<data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><node xmlns="{N}">'
       f'<app><type xmlns:t="{T}">t:CLIENT</type></app>'
       f'<app><type xmlns:t="{T}">t:SERVER</type></app>'
       f'<other xmlns:o="urn:example:other">o:X</other></node></data>')


def test_repeated_declarations_move_to_the_top_level_node_once():
    data = hoist_namespaces(etree.fromstring(XML), {"t": T}, keep=["o"])
    text = etree.tostring(data).decode()
    assert text.count(f'xmlns:t="{T}"') == 1
    node = data[0]
    assert node.nsmap["t"] == T                       # on <node>, not on <data>
    assert "t" not in data.nsmap
    assert [e.text for e in node.iter(f"{{{N}}}type")] == ["t:CLIENT", "t:SERVER"]
    for leaf in node.iter(f"{{{N}}}type"):            # the QName in text still resolves
        assert leaf.nsmap["t"] == T
    assert 'xmlns:o="urn:example:other"' in text      # kept where it was


def test_a_moved_top_level_node_keeps_what_its_values_need():
    data = hoist_namespaces(etree.fromstring(XML), {"t": T})
    config = etree.Element("config")
    config.append(data[0])
    again = etree.fromstring(etree.tostring(config))
    assert all(e.nsmap["t"] == T for e in again.iter(f"{{{N}}}type"))


def test_prefix_maps():
    assert module_prefixes([("a", "urn:a"), ("b", "urn:b"), ("a", "urn:a2")]) == {"b": "urn:b"}
    assert used_prefixes(XML, {"t": T, "z": "urn:z"}) == {"t": T}
