"""Read agents' ETSI 015 data (``get`` replies and notifications) into plain dicts.

Both encodings an agent produces are accepted and normalised to the same shape: RFC 7951
JSON (``{"etsi-qkd-sdn-node:qkd_node": {...}}``) and NETCONF XML (a ``<data>`` element or a
``<notification>``). Normalised form: member names without module prefixes, identityref values
as bare identity names (``PHYS``, ``ACTIVE``, ``QBER``), lists always lists, leaf text as
strings (numbers are converted where they are read).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree

from qkdn.namespaces import ETSI_NODE_NS, NETCONF_NOTIFICATION_NS
from sdn_controller.errors import TopologyDataError

#: ETSI 015 (and our extension) nodes that are lists / leaf-lists.
LIST_NODES = frozenset({
    "qkd_app", "client_app_id", "backing_qkdl_id", "statistics", "qkd_interface", "qkd_link",
    "qkdl_applications", "virt_next_hop", "phys_perf", "refusal",
})

#: Inside notifications ``qkd_application``, ``qkd_interface`` and ``qkd_link`` are
#: containers; only these are lists there.
NOTIFICATION_LIST_NODES = frozenset({"client_app_id", "phys_perf"})

#: Notification names of the ETSI 015 model.
NOTIFICATIONS = frozenset({
    "sdqkdn_application_new", "sdqkdn_application_qos_update",
    "sdqkdn_application_disconnected", "sdqkdn_interface_new", "sdqkdn_interface_down",
    "sdqkdn_interface_out", "sdqkdn_link_down", "sdqkdn_link_perf_update",
    "sdqkdn_link_overloaded", "alarm", "event",
})

_IDENTITY_LEAVES = frozenset({
    "qkdn_status", "app_status", "app_type", "qkdi_type", "role_support", "qkdi_status",
    "qkdl_status", "qkdl_type", "phys_qkd_role", "perf_type", "severity",
})

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                          remove_pis=True, huge_tree=False)


def bare_name(name: str) -> str:
    """``module:name`` → ``name``."""
    return name.rsplit(":", 1)[-1]


def normalise_json(value: Any, key: str = "") -> Any:
    """RFC 7951 JSON → normalised form (prefixes dropped from names and identities)."""
    if isinstance(value, Mapping):
        return {bare_name(k): normalise_json(v, bare_name(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_json(v, key) for v in value]
    if key in _IDENTITY_LEAVES and isinstance(value, str):
        return bare_name(value)
    return value


def parse_xml(data: str | bytes | etree._Element) -> etree._Element:
    if isinstance(data, etree._Element):
        return data
    try:
        return etree.fromstring(data.encode() if isinstance(data, str) else data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise TopologyDataError(f"not well-formed XML: {exc}") from exc


def element_to_dict(element: etree._Element, lists: frozenset[str] = LIST_NODES) -> Any:
    """An XML subtree → normalised form (containers dicts, ``lists`` lists, leaves strings).

    Runs over every element of each periodic ``get`` (its cost grows with the sessions a
    node carries), so names are cut from the Clark tag (``{ns}name``) without a ``QName``
    and leaves are read without a call of their own."""
    result: dict[str, Any] = {}
    for child in element.iterchildren(etree.Element):   # elements only: no comments, PIs
        tag = child.tag
        name = tag[tag.find("}") + 1:]
        if len(child):
            value = element_to_dict(child, lists)
        else:
            value = (child.text or "").strip()
            if name in _IDENTITY_LEAVES:
                value = value[value.rfind(":") + 1:]
        if name in lists:
            result.setdefault(name, []).append(value)
        else:
            result[name] = value
    if result:
        return result
    text = (element.text or "").strip()   # a leaf (or an element holding only comments)
    tag = element.tag
    return bare_name(text) if tag[tag.find("}") + 1:] in _IDENTITY_LEAVES else text


def qkd_node_from_reply(reply: str | bytes | etree._Element | Mapping[str, Any]
                        ) -> dict[str, Any]:
    """The normalised ``qkd_node`` of a get/get-config reply (XML ``<data>``/``<rpc-reply>``
    or RFC 7951 JSON). Raises :class:`TopologyDataError` if there is none."""
    if isinstance(reply, Mapping):
        for key, value in reply.items():
            if bare_name(key) == "qkd_node" and isinstance(value, Mapping):
                return normalise_json(value)
        raise TopologyDataError("no qkd_node in the JSON data")
    root = parse_xml(reply)
    found = root if _is(root, ETSI_NODE_NS, "qkd_node") else \
        root.find(f".//{{{ETSI_NODE_NS}}}qkd_node")
    if found is None:
        raise TopologyDataError("no qkd_node in the reply")
    node = element_to_dict(found)
    if not isinstance(node, dict) or "qkdn_id" not in node:
        raise TopologyDataError("qkd_node without qkdn_id")
    return node


def notification_from_message(message: str | bytes | etree._Element | Mapping[str, Any]
                              ) -> tuple[str, dict[str, Any], str | None]:
    """``(name, body, event_time)`` of a notification, XML ``<notification>`` or JSON
    (``{"etsi-qkd-sdn-node:sdqkdn_link_down": {...}}``, optionally with ``eventTime``)."""
    if isinstance(message, Mapping):
        event_time = message.get("eventTime")
        for key, value in message.items():
            name = bare_name(key)
            if name in NOTIFICATIONS:
                return name, normalise_json(value if isinstance(value, Mapping) else {}), \
                    event_time
        raise TopologyDataError("not an ETSI 015 notification")
    root = parse_xml(message)
    event_time = root.findtext(f"{{{NETCONF_NOTIFICATION_NS}}}eventTime")
    for child in root if _is(root, NETCONF_NOTIFICATION_NS, "notification") else [root]:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        if qname.namespace == ETSI_NODE_NS and qname.localname in NOTIFICATIONS:
            body = element_to_dict(child, NOTIFICATION_LIST_NODES)
            return qname.localname, body if isinstance(body, dict) else {}, event_time
    raise TopologyDataError("not an ETSI 015 notification")


def _is(element: etree._Element, namespace: str, localname: str) -> bool:
    return isinstance(element.tag, str) and etree.QName(element) == etree.QName(namespace,
                                                                                   localname)
