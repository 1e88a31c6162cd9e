"""The session configuration admission control hands to each KM on a path (values only).

A :class:`KmConfig` is what one key manager must know about one session, and nothing more:
session ID, priority, token bucket, idle timeout, its role, the application binding (at the
two end KMs) and, per route leg crossing it, the virtual link with its previous and next KM.
No KM learns the whole path. :mod:`sdn_controller.config_payloads` turns these values into
ETSI 015 edit-config payloads.
"""

from __future__ import annotations

import enum
import math
import uuid
from dataclasses import dataclass

from sdn_controller.identifiers import LinkId, NodeId, SaeId, SessionId
from sdn_controller.routing import Route

#: Namespace of the uuid5 identifiers of virtual links (derived from session and leg).
VIRTUAL_LINK_NAMESPACE = uuid.UUID("0b5a4c1e-4f43-5a8c-9a0e-7d1c3f6e2b90")


class KmRole(str, enum.Enum):
    """Role of a KM on a session's path (``qkdn-km:km-role``): the source serves the SAE that
    opened the session (014 master), the destination its peer."""

    SOURCE = "source"
    RELAY = "relay"
    DESTINATION = "destination"


@dataclass(frozen=True)
class QoS:
    """Quality of service of a session request (ETSI 004 QoS without wire names).

    Rates in bit/s (0 = not specified), jitter in ms, ttl in s (0 = unlimited)."""

    max_bps: int = 0
    min_bps: int = 0
    priority: int = 0
    jitter_ms: int = 0
    ttl_s: int = 0
    key_chunk_size: int = 0  #: bytes per key (004 key_chunk_size); 0 = not specified

    def __post_init__(self) -> None:
        for name in ("max_bps", "min_bps", "priority", "jitter_ms", "ttl_s", "key_chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"QoS {name} must be an integer in [0, 2^32)")


@dataclass(frozen=True)
class TokenBucket:
    """Per-session rate limit at an end KM: refill ``rate_bps``, burst ``size_bits``."""

    size_bits: int
    rate_bps: int


@dataclass(frozen=True)
class AppBinding:
    """The ``qkd_app`` an end KM holds: which SAEs, which nodes, backed by which links."""

    local_sae_id: SaeId
    remote_sae_id: SaeId
    server_sae_id: SaeId  #: the initiator's SAE
    client_sae_id: SaeId  #: the responder's SAE
    local_node: NodeId
    remote_node: NodeId
    qos: QoS
    backing_links: tuple[LinkId, ...]


@dataclass(frozen=True)
class VirtualHop:
    """This KM's entry of one route leg: a VIRT link from ``source`` to ``destination``.

    ``prev_node`` is None at the source, ``next_node`` None at the destination."""

    link_id: LinkId
    source: NodeId
    destination: NodeId
    prev_node: NodeId | None
    next_node: NodeId | None
    bandwidth_bps: int


@dataclass(frozen=True)
class KmConfig:
    node_id: NodeId
    session_id: SessionId
    role: KmRole
    priority: int
    idle_timeout_s: int
    bucket: TokenBucket
    app: AppBinding | None
    hops: tuple[VirtualHop, ...]
    #: True for what a reroute leaves behind on a KM that stays on the path: only ``hops``
    #: (the old virtual links) are to be removed, the session's ``qkd_app`` stays.
    partial: bool = False
    #: what the KMs may deliver when QKD key is short (``qkdn.sla.FallbackPolicy`` value)
    fallback_policy: str = "qkd-only"


def virtual_link_id(session_id: SessionId, generation: int, leg: int) -> LinkId:
    """The ``qkdl_id`` of a session's virtual link (deterministic; new on every reroute)."""
    return LinkId(str(uuid.uuid5(VIRTUAL_LINK_NAMESPACE, f"{session_id}/{generation}/{leg}")))


def token_bucket_for(rate_bps: int, *, burst_s: float, key_chunk_bytes: int = 0) -> TokenBucket:
    """Bucket refilling at the admitted rate, holding ``burst_s`` seconds of it (at least one
    key chunk, at least 1 bit)."""
    size = max(math.ceil(rate_bps * burst_s), key_chunk_bytes * 8, 1)
    return TokenBucket(size_bits=size, rate_bps=rate_bps)


def build_km_configs(*, session_id: SessionId, generation: int, route: Route | None,
                     initiator: tuple[SaeId, NodeId], responder: tuple[SaeId, NodeId],
                     qos: QoS, priority: int, idle_timeout_s: int, bucket: TokenBucket,
                     fallback_policy: str = "qkd-only") -> tuple[KmConfig, ...]:
    """The per-KM configuration of a session routed over ``route``.

    A single one-hop leg is backed directly by the physical link; otherwise every leg becomes
    a virtual link installed on each node it crosses. ``route`` None means both SAEs sit on
    the same node (no link needed).
    """
    (init_sae, init_node), (resp_sae, resp_node) = initiator, responder
    hops: dict[NodeId, list[VirtualHop]] = {}
    if route is None:
        backing: tuple[LinkId, ...] = ()
        nodes_in_order = [init_node] if init_node == resp_node else [init_node, resp_node]
    elif len(route.legs) == 1 and route.legs[0].path.hops == 1:
        backing = route.legs[0].path.links
        nodes_in_order = list(route.legs[0].path.nodes)
    else:
        backing_list: list[LinkId] = []
        nodes_in_order = []
        for index, leg in enumerate(route.legs):
            link_id = virtual_link_id(session_id, generation, index)
            backing_list.append(link_id)
            nodes = leg.path.nodes
            for i, node in enumerate(nodes):
                if node not in nodes_in_order:
                    nodes_in_order.append(node)
                hops.setdefault(node, []).append(VirtualHop(
                    link_id, nodes[0], nodes[-1], nodes[i - 1] if i > 0 else None,
                    nodes[i + 1] if i + 1 < len(nodes) else None, leg.rate_bps))
        backing = tuple(backing_list)
    configs = []
    for node in nodes_in_order:
        if node == init_node:
            role = KmRole.SOURCE
            app = AppBinding(init_sae, resp_sae, init_sae, resp_sae, init_node, resp_node, qos,
                             backing)
        elif node == resp_node:
            role = KmRole.DESTINATION
            app = AppBinding(resp_sae, init_sae, init_sae, resp_sae, resp_node, init_node, qos,
                             backing)
        else:
            role, app = KmRole.RELAY, None
        configs.append(KmConfig(node, session_id, role, priority, idle_timeout_s, bucket, app,
                                tuple(hops.get(node, ())), fallback_policy=fallback_policy))
    if init_node == resp_node:  # both SAEs on one KM: one config carrying the initiator's app
        configs = configs[:1]
    return tuple(configs)
