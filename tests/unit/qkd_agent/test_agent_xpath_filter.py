"""XPath filter prefixes rewritten from XML prefixes to module names."""

from __future__ import annotations

import pytest

from qkd_agent.rpc_error import ErrorTag, RpcError
from qkd_agent.xpath_filter import libyang_xpath

MODULES = {"urn:n": "etsi-qkd-sdn-node", "urn:t": "etsi-qkd-node-types"}


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("/q:qkd_node/q:qkd_links", "/etsi-qkd-sdn-node:qkd_node/etsi-qkd-sdn-node:qkd_links"),
        ("//q:qkd_link[q:qkdl_type='t:PHYS']",  # literals are left alone
         "//etsi-qkd-sdn-node:qkd_link[etsi-qkd-sdn-node:qkdl_type='t:PHYS']"),
        ("/q:a/child::q:b", "/etsi-qkd-sdn-node:a/child::etsi-qkd-sdn-node:b"),
        ("/etsi-qkd-sdn-node:qkd_node", "/etsi-qkd-sdn-node:qkd_node"),  # module name as prefix
        ("count(/q:x/q:y) > 1", "count(/etsi-qkd-sdn-node:x/etsi-qkd-sdn-node:y) > 1"),
    ],
)
def test_prefixes_become_module_names(select: str, expected: str) -> None:
    assert libyang_xpath(select, {"q": "urn:n", "t": "urn:t"}, MODULES) == expected


def test_undeclared_prefix() -> None:
    with pytest.raises(RpcError) as exc:
        libyang_xpath("/zz:a", {"q": "urn:n"}, MODULES)
    assert exc.value.tag is ErrorTag.INVALID_VALUE


def test_prefix_of_unknown_module() -> None:
    with pytest.raises(RpcError) as exc:
        libyang_xpath("/o:a", {"o": "urn:other"}, MODULES)
    assert exc.value.tag is ErrorTag.UNKNOWN_NAMESPACE
