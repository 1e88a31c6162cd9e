"""RFC 6241 §8.9 (``:xpath`` capability) filters: the ``select`` expression of a
``<filter type="xpath">`` rewritten for libyang.

In NETCONF the XPath prefixes are the XML prefixes declared on the ``<filter>`` element
(``xmlns:etsi-qkdn="urn:etsi:qkd:yang:etsi-qkd-node"``); libyang evaluates XPath on data with
module names as prefixes (``etsi-qkd-sdn-node:qkd_node``). :func:`libyang_xpath` substitutes
every name-test prefix outside string literals; the node set is then taken by
:meth:`qkd_agent.data_tree.DataTree.select_xpath` with ancestors and subtrees (§8.9.1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError

# string literals, or a prefix followed by ':' (not '::', the axis separator)
_TOKENS = re.compile(
    r"""(?P<literal>'[^']*'|"[^"]*")|(?<![\w.\-])(?P<prefix>[A-Za-z_][\w.\-]*):(?!:)"""
)


def libyang_xpath(
    select: str, nsmap: Mapping[str | None, str], module_by_namespace: Mapping[str, str]
) -> str:
    """``select`` with XML prefixes replaced by module names.

    Raises ``invalid-value`` (error-info ``bad-attribute`` select) for an undeclared prefix
    or a namespace that is not a known module.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("literal"):
            return match.group("literal")
        prefix = match.group("prefix")
        namespace = nsmap.get(prefix)
        if namespace is None:
            if prefix in module_by_namespace.values():
                return f"{prefix}:"  # already a module name
            raise RpcError(
                tag=ErrorTag.INVALID_VALUE,
                message=f'XPath prefix "{prefix}" is not declared on the filter',
                type=ErrorType.PROTOCOL,
                info={"bad-attribute": "select", "bad-element": "filter"},
            )
        module = module_by_namespace.get(namespace)
        if module is None:
            raise RpcError(
                tag=ErrorTag.UNKNOWN_NAMESPACE,
                message=f'namespace "{namespace}" is not a known YANG module',
                type=ErrorType.PROTOCOL,
                info={"bad-element": "filter", "bad-namespace": namespace},
            )
        return f"{module}:"

    return _TOKENS.sub(replace, select)
