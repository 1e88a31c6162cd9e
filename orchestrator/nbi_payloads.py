"""NETCONF payloads the orchestrator sends to the controller: subtree filters, edit-config
bodies and RPCs. Pure functions (lxml elements in, lxml elements out) so tests can assert
them exactly; :mod:`orchestrator.nbi_client` only sends them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lxml import etree

from orchestrator.errors import InvalidRequest
from qkdn.namespaces import (
    NETCONF_BASE_NS,
    QKDN_ACC_NS,
    QKDN_ACC_PREFIX,
    QKDN_INV_NS,
    QKDN_TOPO_NS,
)

NC_OPERATION = f"{{{NETCONF_BASE_NS}}}operation"


class EditOperation(StrEnum):
    """RFC 6241 ``nc:operation`` values the API uses."""

    CREATE = "create"
    MERGE = "merge"
    DELETE = "delete"


@dataclass(frozen=True)
class AccessList:
    """One list of ``qkdn-sdn-access:qkd_access``: REST collection ↔ YANG container/list."""

    container: str
    entry: str
    key: str


#: REST collection name → the YANG list it is.
ACCESS_LISTS: dict[str, AccessList] = {
    "users": AccessList("users", "user", "name"),
    "applications": AccessList("applications", "application", "sae_id"),
    "sla_profiles": AccessList("sla_profiles", "sla_profile", "name"),
}

#: Leaves of the access lists whose values are identities of qkdn-sdn-access.
_ACCESS_IDENTITY_LEAVES = frozenset({"restoration_type"})

#: Read-only leaves that never go into an edit.
_STATE_LEAVES = frozenset({"active_sessions"})


def _topo(tag: str) -> str:
    return f"{{{QKDN_TOPO_NS}}}{tag}"


def _acc(tag: str) -> str:
    return f"{{{QKDN_ACC_NS}}}{tag}"


# ---------------------------------------------------------------------------- filters


def network_filter(*, section: str | None = None, list_name: str | None = None,
                   key_name: str | None = None, key: str | None = None) -> etree._Element:
    """Subtree filter for ``qkd_network`` or one of its parts.

    ``section`` is ``sdqkd_nodes`` or ``phys_links`` / ``svc_links`` (under ``qkd_links``);
    with ``key`` only the entry ``list_name[key_name=key]``.

    >>> etree.tostring(network_filter(section="sdqkd_nodes")).decode()
    '<qkd_network xmlns="urn:qkdn:yang:qkdn-sdn-topology"><sdqkd_nodes/></qkd_network>'
    """
    root = etree.Element(_topo("qkd_network"), nsmap={None: QKDN_TOPO_NS})
    if section is None:
        return root
    parent = root
    if section in ("phys_links", "svc_links"):
        parent = etree.SubElement(root, _topo("qkd_links"))
    container = etree.SubElement(parent, _topo(section))
    if key is not None:
        assert list_name and key_name
        entry = etree.SubElement(container, _topo(list_name))
        etree.SubElement(entry, _topo(key_name)).text = xml_text(key)
    return root


def node_filter(qkdn_id: str | None = None) -> etree._Element:
    return network_filter(section="sdqkd_nodes", list_name="sdqkd_node", key_name="qkdn_id",
                          key=qkdn_id)


def phys_link_filter(qkdl_id: str | None = None) -> etree._Element:
    return network_filter(section="phys_links", list_name="phys_link", key_name="qkdl_id",
                          key=qkdl_id)


def svc_link_filter(qkdl_id: str | None = None) -> etree._Element:
    return network_filter(section="svc_links", list_name="svc_link", key_name="qkdl_id",
                          key=qkdl_id)


def access_filter(collection: str | None = None, key: str | None = None) -> etree._Element:
    """Subtree filter for ``qkd_access``, one of its lists, or one entry."""
    root = etree.Element(_acc("qkd_access"), nsmap={None: QKDN_ACC_NS})
    if collection is None:
        return root
    spec = ACCESS_LISTS[collection]
    container = etree.SubElement(root, _acc(spec.container))
    if key is not None:
        entry = etree.SubElement(container, _acc(spec.entry))
        etree.SubElement(entry, _acc(spec.key)).text = xml_text(key)
    return root


# ---------------------------------------------------------------------------- edits


#: Characters XML 1.0 cannot carry (control characters but tab/CR/LF, U+FFFE, U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> str:
    """A leaf's text; InvalidRequest for a value XML cannot carry (e.g. control characters).

    >>> xml_text(True), xml_text(7)
    ('true', '7')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if _NOT_XML.search(text):
        raise InvalidRequest(f"{text!r} contains characters that NETCONF (XML) cannot carry")
    return text


_leaf_text = xml_text


def _append_members(parent: etree._Element, ns: str, body: Mapping[str, Any],
                    identity_leaves: frozenset[str], identity_prefix: str,
                    first: str | None = None) -> None:
    """JSON members → child elements (``first``, the list key, goes first)."""
    names = sorted(body, key=lambda name: (name != first,))
    for name in names:
        value = body[name]
        if name in _STATE_LEAVES or value is None:
            continue
        tag = f"{{{ns}}}{name}"
        if isinstance(value, Mapping):
            child = etree.SubElement(parent, tag)
            _append_members(child, ns, value, identity_leaves, identity_prefix)
        elif isinstance(value, list):
            for item in value:
                etree.SubElement(parent, tag).text = _leaf_text(item)
        else:
            text = _leaf_text(value)
            if name in identity_leaves and ":" not in text:
                text = f"{identity_prefix}:{text}"
            etree.SubElement(parent, tag).text = text


def access_edit(collection: str, body: Mapping[str, Any],
                operation: EditOperation) -> etree._Element:
    """``<config>`` that applies ``operation`` to one entry of an access list.

    ``body`` holds the entry's key and, for create/merge, the leaves to set (plain JSON as
    the REST API takes it; identities by bare name).

    >>> xml = access_edit("users", {"name": "bank-a", "revoked": True}, EditOperation.MERGE)
    >>> b'<revoked>true</revoked>' in etree.tostring(xml)
    True
    """
    spec = ACCESS_LISTS[collection]
    config = etree.Element(f"{{{NETCONF_BASE_NS}}}config",
                           nsmap={"nc": NETCONF_BASE_NS})
    root = etree.SubElement(config, _acc("qkd_access"),
                            nsmap={None: QKDN_ACC_NS, QKDN_ACC_PREFIX: QKDN_ACC_NS})
    container = etree.SubElement(root, _acc(spec.container))
    entry = etree.SubElement(container, _acc(spec.entry))
    entry.set(NC_OPERATION, operation.value)
    if operation is EditOperation.DELETE:
        etree.SubElement(entry, _acc(spec.key)).text = _leaf_text(body[spec.key])
        return config
    _append_members(entry, QKDN_ACC_NS, body, _ACCESS_IDENTITY_LEAVES, QKDN_ACC_PREFIX,
                    first=spec.key)
    return config


def phys_link_edit(qkdl_id: str, details: Mapping[str, Any]) -> etree._Element:
    """``<config>`` merging ``phys_link_details`` leaves (``qkdl_enable``, fibre data) of one
    physical link; the link must exist (``nc:operation="merge"`` on details only)."""
    config = etree.Element(f"{{{NETCONF_BASE_NS}}}config", nsmap={"nc": NETCONF_BASE_NS})
    network = etree.SubElement(config, _topo("qkd_network"), nsmap={None: QKDN_TOPO_NS})
    links = etree.SubElement(etree.SubElement(network, _topo("qkd_links")), _topo("phys_links"))
    link = etree.SubElement(links, _topo("phys_link"))
    etree.SubElement(link, _topo("qkdl_id")).text = xml_text(qkdl_id)
    target = etree.SubElement(link, f"{{{QKDN_INV_NS}}}phys_link_details",
                              nsmap={None: QKDN_INV_NS})
    _append_members(target, QKDN_INV_NS, details, frozenset(), "")
    return config


# ---------------------------------------------------------------------------- RPCs


def close_svc_link_rpc(qkdl_id: str, reason: str | None = None) -> etree._Element:
    """``<close_svc_link>`` (qkdn-sdn-inventory) for one session."""
    rpc = etree.Element(f"{{{QKDN_INV_NS}}}close_svc_link", nsmap={None: QKDN_INV_NS})
    etree.SubElement(rpc, f"{{{QKDN_INV_NS}}}qkdl_id").text = xml_text(qkdl_id)
    if reason:
        etree.SubElement(rpc, f"{{{QKDN_INV_NS}}}reason").text = xml_text(reason)
    return rpc


def restore_svc_link_rpc(qkdl_id: str) -> etree._Element:
    """``<restore_svc_link>`` (qkdn-sdn-inventory): compute a new path now."""
    rpc = etree.Element(f"{{{QKDN_INV_NS}}}restore_svc_link", nsmap={None: QKDN_INV_NS})
    etree.SubElement(rpc, f"{{{QKDN_INV_NS}}}qkdl_id").text = xml_text(qkdl_id)
    return rpc
