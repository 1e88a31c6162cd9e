"""ETSI GS QKD 015 edit-config payloads for a session's key managers (pure functions).

For each KM on a session's path, :func:`session_config_payload` builds the ``<config>`` of one
edit-config:

- a ``qkd_app`` (``app_id`` = session ID, ``app_type`` CLIENT, ``server_app_id`` = the SAE
  that opened the session, ``client_app_id`` = its peer, ``app_priority``, ``app_qos``,
  ``backing_qkdl_id``, ``local_qkdn_id``/``remote_qkdn_id``) with our ``qkdn-km:km_session``
  extension (role, token bucket, idle timeout, key size). Relays get the same entry without
  SAE ids: they learn only which virtual links the session uses.
  The entry is sent with ``nc:operation="replace"`` so a reroute swaps its backing links;
- on every node of a multi-hop leg, a VIRT ``qkd_link`` (``qkdl_type`` etsi-qkdn-types:VIRT,
  ``virt_prev_hop``, ``virt_next_hop``, ``virt_bandwidth``, ``qkdl_local``/``qkdl_remote``):
  the forwarding rule. At an end KM ``qkdl_local`` is itself and ``qkdl_remote`` the other
  end; at a relay they are the leg's source and destination. ``virt_prev_hop`` is absent at the
  source and ``virt_next_hop`` at the destination.

:func:`session_delete_payload` removes the same entries with ``nc:operation="remove"``
(RFC 6241 §7.2: deleted if present, no error if already gone), so deleting what another
deletion — an orphan removal, a rollback, a retried close — already took away is a success,
never a ``data-missing`` refusal of the whole edit.
Wire names appear only here; the values come from :mod:`sdn_controller.session_config`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

from lxml import etree

from qkdn.namespaces import (
    ETSI_NODE_NS,
    ETSI_TYPES_NS,
    ETSI_TYPES_PREFIX,
    NETCONF_BASE_NS,
    QKDN_KM_NS,
    QKDN_KM_PREFIX,
)
from sdn_controller.refusal_channel import SessionRefusal
from sdn_controller.session_config import KmConfig, KmRole, VirtualHop

NC = "nc"
#: the operation of every deletion the controller sends: ``remove`` is idempotent (RFC 6241
#: §7.2), ``delete`` would refuse the whole edit with ``data-missing`` for an entry already gone
REMOVE = "remove"
_NSMAP_CONFIG = {None: NETCONF_BASE_NS}


def _q(tag: str, ns: str = ETSI_NODE_NS) -> str:
    return f"{{{ns}}}{tag}"


def _leaf(parent: etree._Element, tag: str, value: object, ns: str = ETSI_NODE_NS
          ) -> etree._Element:
    element = etree.SubElement(parent, _q(tag, ns))
    element.text = str(value).lower() if isinstance(value, bool) else str(value)
    return element


def _identity(parent: etree._Element, tag: str, identity: str) -> etree._Element:
    element = etree.SubElement(parent, _q(tag), nsmap={ETSI_TYPES_PREFIX: ETSI_TYPES_NS})
    element.text = f"{ETSI_TYPES_PREFIX}:{identity}"
    return element


def _config_root(node_id: str) -> tuple[etree._Element, etree._Element]:
    config = etree.Element(_q("config", NETCONF_BASE_NS), nsmap={NC: NETCONF_BASE_NS})
    node = etree.SubElement(config, _q("qkd_node"), nsmap={None: ETSI_NODE_NS})
    _leaf(node, "qkdn_id", node_id)
    return config, node


def _operation(element: etree._Element, operation: str) -> None:
    element.set(_q("operation", NETCONF_BASE_NS), operation)


def session_config_payload(config: KmConfig, *, with_extensions: bool = True
                           ) -> etree._Element:
    """The ``<config>`` that installs ``config`` on its KM (``config.node_id``).

    ``with_extensions=False`` leaves out the ``qkdn-km`` leaves (plain ETSI 015 agents)."""
    root, node = _config_root(config.node_id)
    apps = etree.SubElement(node, _q("qkd_applications"))
    app = etree.SubElement(apps, _q("qkd_app"))
    _operation(app, "replace")
    _leaf(app, "app_id", config.session_id)
    _identity(app, "app_type", "CLIENT")
    binding = config.app
    if binding is not None:
        _leaf(app, "server_app_id", binding.server_sae_id)
        _leaf(app, "client_app_id", binding.client_sae_id)
    _leaf(app, "app_priority", config.priority)
    if binding is not None:
        qos = etree.SubElement(app, _q("app_qos"))
        if binding.qos.max_bps:
            _leaf(qos, "max_bandwidth", binding.qos.max_bps)
        if binding.qos.min_bps:
            _leaf(qos, "min_bandwidth", binding.qos.min_bps)
        if binding.qos.jitter_ms:
            _leaf(qos, "jitter", binding.qos.jitter_ms)
        if binding.qos.ttl_s:
            _leaf(qos, "ttl", binding.qos.ttl_s)
        backing = binding.backing_links
        local, remote = binding.local_node, binding.remote_node
    else:
        backing = tuple(h.link_id for h in config.hops)
        local, remote = config.hops[0].source, config.hops[0].destination
    for link_id in backing:
        _leaf(app, "backing_qkdl_id", link_id)
    _leaf(app, "local_qkdn_id", local)
    _leaf(app, "remote_qkdn_id", remote)
    if with_extensions:
        _km_session(app, config)
    if config.hops:
        links = etree.SubElement(node, _q("qkd_links"))
        for hop in config.hops:
            _virtual_link(links, config, hop)
    return root


def _km_session(app: etree._Element, config: KmConfig) -> None:
    session = etree.SubElement(app, _q("km_session", QKDN_KM_NS),
                               nsmap={QKDN_KM_PREFIX: QKDN_KM_NS})
    _leaf(session, "role", config.role.value, QKDN_KM_NS)
    bucket = etree.SubElement(session, _q("token_bucket", QKDN_KM_NS))
    _leaf(bucket, "bucket_size", config.bucket.size_bits, QKDN_KM_NS)
    _leaf(bucket, "token_rate", config.bucket.rate_bps, QKDN_KM_NS)
    _leaf(session, "idle_timeout", config.idle_timeout_s, QKDN_KM_NS)
    chunk = config.app.qos.key_chunk_size if config.app is not None else 0
    if chunk:
        _leaf(session, "key_chunk_size", chunk, QKDN_KM_NS)
    if config.fallback_policy != "qkd-only":   # the YANG default; ADR 0009
        _leaf(session, "fallback_policy", config.fallback_policy, QKDN_KM_NS)


def _virtual_link(links: etree._Element, config: KmConfig, hop: VirtualHop) -> None:
    link = etree.SubElement(links, _q("qkd_link"))
    _operation(link, "replace")
    _leaf(link, "qkdl_id", hop.link_id)
    _leaf(link, "qkdl_enable", True)
    if config.role is KmRole.RELAY:
        local, remote = hop.source, hop.destination
    else:
        local = config.node_id
        remote = hop.destination if config.node_id == hop.source else hop.source
    _leaf(etree.SubElement(link, _q("qkdl_local")), "qkdn_id", local)
    _leaf(etree.SubElement(link, _q("qkdl_remote")), "qkdn_id", remote)
    _identity(link, "qkdl_type", "VIRT")
    _leaf(link, "qkdl_applications", config.session_id)
    if hop.prev_node is not None:
        _leaf(link, "virt_prev_hop", hop.prev_node)
    if hop.next_node is not None:
        _leaf(link, "virt_next_hop", hop.next_node)
    _leaf(link, "virt_bandwidth", hop.bandwidth_bps)


# --- the same install payload, serialised directly ---------------------------------------------
_XML_INCOMPATIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_NS_DECL_TYPES = f'xmlns:{ETSI_TYPES_PREFIX}="{ETSI_TYPES_NS}"'
_KM = QKDN_KM_PREFIX


def _text(value: object) -> str:
    """A leaf's text as :func:`_leaf` sets it, escaped as lxml serialises it; ValueError for
    characters XML cannot carry (lxml refuses them too)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if _XML_INCOMPATIBLE.search(text):
        raise ValueError("All strings must be XML compatible: Unicode or ASCII, no NULL bytes "
                         "or control characters")
    return text.translate(_TEXT_ESCAPES)


def session_config_text(config: KmConfig, *, with_extensions: bool = True) -> str:
    """``to_xml(session_config_payload(config, with_extensions=...))``, character for
    character, written as text: ~6× cheaper than building the elements and serialising them
    (the controller builds one per KM of a path, on its serial path; a unit test holds the
    two equal)."""
    parts = [(f'<nc:config xmlns:nc="{NETCONF_BASE_NS}"><qkd_node xmlns="{ETSI_NODE_NS}">'
             f"<qkdn_id>{_text(config.node_id)}</qkdn_id><qkd_applications>"
             f'<qkd_app nc:operation="replace"><app_id>{_text(config.session_id)}</app_id>'
             f"<app_type {_NS_DECL_TYPES}>{ETSI_TYPES_PREFIX}:CLIENT</app_type>")]
    binding = config.app
    if binding is not None:
        parts.append(f"<server_app_id>{_text(binding.server_sae_id)}</server_app_id>"
                     f"<client_app_id>{_text(binding.client_sae_id)}</client_app_id>")
    parts.append(f"<app_priority>{_text(config.priority)}</app_priority>")
    if binding is not None:
        qos = binding.qos
        leaves = "".join(f"<{tag}>{_text(value)}</{tag}>" for tag, value in (
            ("max_bandwidth", qos.max_bps), ("min_bandwidth", qos.min_bps),
            ("jitter", qos.jitter_ms), ("ttl", qos.ttl_s)) if value)
        parts.append(f"<app_qos>{leaves}</app_qos>" if leaves else "<app_qos/>")
        backing = binding.backing_links
        local, remote = binding.local_node, binding.remote_node
    else:
        backing = tuple(h.link_id for h in config.hops)
        local, remote = config.hops[0].source, config.hops[0].destination
    parts.extend(f"<backing_qkdl_id>{_text(link_id)}</backing_qkdl_id>" for link_id in backing)
    parts.append(f"<local_qkdn_id>{_text(local)}</local_qkdn_id>"
                 f"<remote_qkdn_id>{_text(remote)}</remote_qkdn_id>")
    if with_extensions:
        chunk = config.app.qos.key_chunk_size if config.app is not None else 0
        parts.append(
            f'<{_KM}:km_session xmlns:{_KM}="{QKDN_KM_NS}"><{_KM}:role>'
            f"{_text(config.role.value)}</{_KM}:role><{_KM}:token_bucket><{_KM}:bucket_size>"
            f"{_text(config.bucket.size_bits)}</{_KM}:bucket_size><{_KM}:token_rate>"
            f"{_text(config.bucket.rate_bps)}</{_KM}:token_rate></{_KM}:token_bucket>"
            f"<{_KM}:idle_timeout>{_text(config.idle_timeout_s)}</{_KM}:idle_timeout>")
        if chunk:
            parts.append(f"<{_KM}:key_chunk_size>{_text(chunk)}</{_KM}:key_chunk_size>")
        if config.fallback_policy != "qkd-only":
            parts.append(f"<{_KM}:fallback_policy>{_text(config.fallback_policy)}"
                         f"</{_KM}:fallback_policy>")
        parts.append(f"</{_KM}:km_session>")
    parts.append("</qkd_app></qkd_applications>")
    if config.hops:
        parts.append("<qkd_links>")
        for hop in config.hops:
            if config.role is KmRole.RELAY:
                hop_local, hop_remote = hop.source, hop.destination
            else:
                hop_local = config.node_id
                hop_remote = hop.destination if config.node_id == hop.source else hop.source
            parts.append(
                f'<qkd_link nc:operation="replace"><qkdl_id>{_text(hop.link_id)}</qkdl_id>'
                f"<qkdl_enable>true</qkdl_enable><qkdl_local><qkdn_id>{_text(hop_local)}"
                f"</qkdn_id></qkdl_local><qkdl_remote><qkdn_id>{_text(hop_remote)}</qkdn_id>"
                f"</qkdl_remote><qkdl_type {_NS_DECL_TYPES}>{ETSI_TYPES_PREFIX}:VIRT"
                f"</qkdl_type><qkdl_applications>{_text(config.session_id)}"
                "</qkdl_applications>")
            if hop.prev_node is not None:
                parts.append(f"<virt_prev_hop>{_text(hop.prev_node)}</virt_prev_hop>")
            if hop.next_node is not None:
                parts.append(f"<virt_next_hop>{_text(hop.next_node)}</virt_next_hop>")
            parts.append(f"<virt_bandwidth>{_text(hop.bandwidth_bps)}</virt_bandwidth>"
                         "</qkd_link>")
        parts.append("</qkd_links>")
    parts.append("</qkd_node></nc:config>")
    return "".join(parts)


def session_delete_payload(config: KmConfig) -> etree._Element:
    """The ``<config>`` removing ``config`` from its KM: the ``qkd_app`` and every virtual
    link of ``config.hops``. A ``partial`` configuration (left behind by a reroute on a KM
    that stays on the path) removes only its old virtual links; the ``qkd_app``, already
    replaced, stays.
    """
    root, node = _config_root(config.node_id)
    if not config.partial:
        apps = etree.SubElement(node, _q("qkd_applications"))
        app = etree.SubElement(apps, _q("qkd_app"))
        _operation(app, REMOVE)
        _leaf(app, "app_id", config.session_id)
    if config.hops:
        links = etree.SubElement(node, _q("qkd_links"))
        for hop in config.hops:
            link = etree.SubElement(links, _q("qkd_link"))
            _operation(link, REMOVE)
            _leaf(link, "qkdl_id", hop.link_id)
    return root


def to_xml(payload: etree._Element, *, pretty: bool = False) -> str:
    return etree.tostring(payload, pretty_print=pretty, encoding="unicode")


def session_restore_payload(old: KmConfig, new: KmConfig) -> etree._Element:
    """Undo of installing ``new`` on a KM that held ``old`` (rollback of a reroute): put the
    old ``qkd_app`` and virtual links back and delete the virtual links only ``new`` has."""
    if old.node_id != new.node_id:
        raise ValueError("old and new configuration are for different nodes")
    root = session_config_payload(old)
    node = root[0]
    old_links = {h.link_id for h in old.hops}
    added = [h for h in new.hops if h.link_id not in old_links]
    if added:
        links = node.find(_q("qkd_links"))
        if links is None:
            links = etree.SubElement(node, _q("qkd_links"))
        for hop in added:
            link = etree.SubElement(links, _q("qkd_link"))
            _operation(link, REMOVE)
            _leaf(link, "qkdl_id", hop.link_id)
    return root


def orphan_delete_payload(node_id: str, app_ids: list[str], virtual_link_ids: list[str],
                          refusal_ids: Sequence[str] = ()) -> etree._Element:
    """Delete ``qkd_app`` entries and virtual links the controller no longer knows, and
    refusal entries (``qkdn-km:km_refusals/refusal``) past their retention."""
    root, node = _config_root(node_id)
    if refusal_ids:
        refusals = etree.SubElement(node, _q("km_refusals", QKDN_KM_NS),
                                    nsmap={QKDN_KM_PREFIX: QKDN_KM_NS})
        for request_id in refusal_ids:
            entry = etree.SubElement(refusals, _q("refusal", QKDN_KM_NS))
            _operation(entry, REMOVE)
            _leaf(entry, "request_id", request_id, QKDN_KM_NS)
    if app_ids:
        apps = etree.SubElement(node, _q("qkd_applications"))
        for app_id in app_ids:
            app = etree.SubElement(apps, _q("qkd_app"))
            _operation(app, REMOVE)
            _leaf(app, "app_id", app_id)
    if virtual_link_ids:
        links = etree.SubElement(node, _q("qkd_links"))
        for link_id in virtual_link_ids:
            link = etree.SubElement(links, _q("qkd_link"))
            _operation(link, REMOVE)
            _leaf(link, "qkdl_id", link_id)
    return root


def link_enable_payload(node_id: str, qkdl_id: str, enabled: bool) -> etree._Element:
    """Set ``qkdl_enable`` of a node's physical link (an operator takes it out of service or
    puts it back)."""
    root, node = _config_root(node_id)
    links = etree.SubElement(node, _q("qkd_links"))
    link = etree.SubElement(links, _q("qkd_link"))
    _leaf(link, "qkdl_id", qkdl_id)
    _leaf(link, "qkdl_enable", enabled)
    return root


def refusal_payload(node_id: str, refusal: SessionRefusal, *, refused_at: str
                    ) -> etree._Element:
    """A ``qkdn-km:km_refusals/refusal`` entry telling the KM of ``node_id`` that the
    request it reported is refused (docs/adr/0010-session-refusal.md)."""
    root, node = _config_root(node_id)
    refusals = etree.SubElement(node, _q("km_refusals", QKDN_KM_NS),
                                nsmap={QKDN_KM_PREFIX: QKDN_KM_NS})
    entry = etree.SubElement(refusals, _q("refusal", QKDN_KM_NS))
    _operation(entry, "replace")
    _leaf(entry, "request_id", refusal.entry_id(node_id), QKDN_KM_NS)
    _leaf(entry, "sae_id", refusal.sae_id, QKDN_KM_NS)
    if refusal.peer_sae_id:
        _leaf(entry, "peer_sae_id", refusal.peer_sae_id, QKDN_KM_NS)
    if refusal.session_id:
        _leaf(entry, "app_id", refusal.session_id, QKDN_KM_NS)
    _leaf(entry, "etsi004_status", refusal.status, QKDN_KM_NS)
    _leaf(entry, "access_denied", refusal.access_denied, QKDN_KM_NS)
    _leaf(entry, "reason", refusal.reason, QKDN_KM_NS)
    if refusal.detail:
        _leaf(entry, "detail", refusal.detail, QKDN_KM_NS)
    _leaf(entry, "refused_at", refused_at, QKDN_KM_NS)
    qos = refusal.counter_proposal
    if qos is not None:
        proposal = etree.SubElement(entry, _q("counter_proposal", QKDN_KM_NS))
        _leaf(proposal, "max_bps", qos.max_bps, QKDN_KM_NS)
        _leaf(proposal, "min_bps", qos.min_bps, QKDN_KM_NS)
        _leaf(proposal, "priority", qos.priority, QKDN_KM_NS)
        if qos.key_chunk_size:
            _leaf(proposal, "key_chunk_size", qos.key_chunk_size, QKDN_KM_NS)
    return root


def merge_payloads(payloads: list[etree._Element]) -> etree._Element:
    """One ``<config>`` for one node holding the entries of several payloads for that node
    (e.g. the sessions moved together after a link failure: one edit-config per node
    instead of one per session). Entries must be independent (different sessions)."""
    if not payloads:
        raise ValueError("nothing to merge")
    merged = copy.deepcopy(payloads[0])
    node = merged[0]
    node_id = node.findtext(_q("qkdn_id"))
    for payload in payloads[1:]:
        other = payload[0]
        if other.findtext(_q("qkdn_id")) != node_id:
            raise ValueError("payloads for different nodes")
        for container in other:
            if container.tag == _q("qkdn_id"):
                continue
            target = node.find(container.tag)
            if target is None:
                node.append(copy.deepcopy(container))
            else:
                for entry in container:
                    target.append(copy.deepcopy(entry))
    return merged
