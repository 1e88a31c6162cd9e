"""The ETSI 015 ``qkd_node`` a node starts with, built from the topology (pure functions).

Each node's configuration holds its identity, capabilities, one ``qkd_interface`` per link end
(the emulated QKD module) and one PHYS ``qkd_link`` per physical link, as RFC 7951 JSON.
"""

from __future__ import annotations

from typing import Any

from qkdn import __version__
from qkdn.namespaces import ETSI_NODE_MODULE, ETSI_TYPES_MODULE
from qkdn.topology import Link, Topology, link_parameters

QKD_NODE = f"{ETSI_NODE_MODULE}:qkd_node"


def identity(name: str) -> str:
    """An ``etsi-qkd-node-types`` identity as RFC 7951 JSON writes it."""
    return f"{ETSI_TYPES_MODULE}:{name}"


def channel_attenuation_db(link: Link) -> float:
    """Fiber loss plus any extra loss of the link's physics parameters, in dB."""
    params = link_parameters(link)
    return round(params.alpha_db_per_km * params.length_km + params.extra_loss_db, 3)


def link_role(link: Link, node: str) -> str:
    return "TRANSMITTER" if node == link.a else "RECEIVER"


def wavelength_channel(topology: Topology, link: Link) -> str:
    """A DWDM channel per link (1-based position in the topology's link list)."""
    return str(topology.links.index(link) + 1)


def initial_node_config(topology: Topology, node_name: str) -> dict[str, Any]:
    """RFC 7951 JSON of ``node_name``'s ``qkd_node`` configuration."""
    node = topology.node(node_name)
    interfaces = []
    links = []
    for link in topology.links_of(node_name):
        peer = topology.node(link.peer_of(node_name))
        qkdi_id = topology.interface_id(node_name, link)
        role = identity(link_role(link, node_name))
        channel = wavelength_channel(topology, link)
        attenuation = channel_attenuation_db(link)
        interfaces.append({
            "qkdi_id": qkdi_id,
            "qkdi_model": f"qkdn-twin decoy-state BB84 ({link.preset}, {link.mode} mode)",
            "qkdi_type": identity("DV-QKD"),
            "qkdi_att_point": {"device": f"fiber-{node.name}-{peer.name}", "port": qkdi_id},
            "qkdi_capabilities": {"role_support": role, "wavelength_range": channel,
                                  "max_absorption": f"{max(attenuation, 1.0) * 2:.3f}"},
        })
        links.append({
            "qkdl_id": link.qkdl_id,
            "qkdl_enable": True,
            "qkdl_local": {"qkdn_id": node.qkdn_id, "qkdi_id": qkdi_id},
            "qkdl_remote": {"qkdn_id": peer.qkdn_id,
                            "qkdi_id": topology.interface_id(peer.name, link)},
            "qkdl_type": identity("PHYS"),
            "phys_channel_att": f"{attenuation:.3f}",
            "phys_wavelength": channel,
            "phys_qkd_role": role,
        })
    body: dict[str, Any] = {
        "qkdn_id": node.qkdn_id,
        "qkdn_version": f"qkdn {__version__}",
        "qkdn_location_id": node.location or node.name,
        "qkdn_capabilities": {"link_stats_support": True, "application_stats_support": True,
                              "key_relay_mode_enable": True},
    }
    if interfaces:
        body["qkd_interfaces"] = {"qkd_interface": interfaces}
    if links:
        body["qkd_links"] = {"qkd_link": links}
    return {QKD_NODE: body}
