"""What a running agent serves is valid under the standard's own ETSI 015 model files."""

from __future__ import annotations

import os
from pathlib import Path

import libyang
import pytest

from qkdn.namespaces import ETSI_NODE_NS
from qkdn.netconf_client import connect

from .conftest import REPO

pytestmark = pytest.mark.integration

SHARED = Path(os.environ.get("QKDN_SHARED_DIR", REPO.parent / "shared"))
VALIDATION_YANG = SHARED / "reference" / "etsi-yang" / "validation"


@pytest.fixture(scope="module")
def reference_context():
    if not VALIDATION_YANG.is_dir():
        pytest.skip(f"ETSI reference modules not found at {VALIDATION_YANG}")
    ctx = libyang.Context(str(VALIDATION_YANG))
    ctx.load_module("etsi-qkd-node-types")
    ctx.load_module("etsi-qkd-sdn-node")
    yield ctx
    ctx.destroy()


def _qkd_node_xml(netconf) -> str:
    from lxml import etree

    with connect(netconf["host"], netconf["port"], netconf["username"],
                 netconf["password"]) as session:
        reply = session.get(filter=("subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"/>'))
    node = reply.data_ele.find(f"{{{ETSI_NODE_NS}}}qkd_node")
    assert node is not None
    # qkdn's own extension leaves are not part of the standard: drop them, keep the rest
    for element in list(node.iter()):
        if isinstance(element.tag, str) and etree.QName(element).namespace != ETSI_NODE_NS:
            element.getparent().remove(element)
    return etree.tostring(node).decode()


@pytest.mark.parametrize("node", ["0", "4"])
def test_get_validates_against_the_official_model(paper_network, reference_context, node):
    xml = _qkd_node_xml(paper_network.netconf(node))
    # strict: a node the official model does not define fails the parse; validate_present
    # checks types, keys, identities and the corrected when conditions of the ETSI modules
    data = reference_context.parse_data_mem(xml, "xml", strict=True, validate_present=True)
    try:
        tree = data.print_dict()
        assert tree["qkd_node"]["qkdn_id"] == paper_network.endpoints["nodes"][node]["qkdn_id"]
    finally:
        data.free()
