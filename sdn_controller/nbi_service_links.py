"""North-bound service links: the controller's key sessions as ``qkd_network/qkd_links/
svc_links`` entries (RFC 7951 JSON), with paths, state, bandwidth, restoration policy and
the performance of the links they use.

Pure. A service link's ``qkdl_id`` is the session ID (004 Key_stream_ID, 015 ``app_id``);
its ends are the two applications' nodes; ``paths`` lists every leg of the route hop by hop
(node, outgoing physical link).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from qkdn.namespaces import ETSI_TYPES_MODULE, QKDN_ACC_MODULE, QKDN_INV_MODULE
from sdn_controller.admission_control import SessionState, SessionView
from sdn_controller.link_metrics import LinkMetrics
from sdn_controller.nbi_network import NETWORK, date_and_time, decimal3, identity, uint32
from sdn_controller.path_restoration import DEFAULT_RESTORATION, PathRestoration
from sdn_controller.routing import Route

SVC_DETAILS = f"{QKDN_INV_MODULE}:svc_link_details"

#: 015 link status shown for a session in each state
_STATUS = {SessionState.CONFIG_REQUESTED: "PENDING", SessionState.ACCEPTED: "PENDING",
           SessionState.ACTIVE: "ACTIVE", SessionState.TERMINATED: "OFF"}


def paths_json(view: SessionView) -> dict[str, Any]:
    """``paths`` of a session: one ``path`` per leg of its route, hops in order; a session
    between two applications of one node has one path of one hop; none before it is
    routed."""
    route: Route | None = view.route
    if route is None:
        if view.state is SessionState.ACTIVE and view.responder is not None:
            return {"path": [{"path_index": 0,
                              "hop": [{"hop_index": 0, "qkdn_id": view.initiator.node_id}]}]}
        return {"path": []}
    paths = []
    for index, leg in enumerate(route.legs):
        hops = []
        for position, node in enumerate(leg.path.nodes):
            hop: dict[str, Any] = {"hop_index": position, "qkdn_id": node}
            if position < len(leg.path.links):
                hop["phys_link"] = leg.path.links[position]
            hops.append(hop)
        paths.append({"path_index": index, "hop": hops})
    return {"path": paths}


def path_performance(route: Route | None, links: Mapping[str, LinkMetrics]) -> dict[str, Any]:
    """A session's ``qkdl_performance``: per leg the bottleneck skr/eskr (summed over legs),
    the worst QBER and the lowest key-store level over every link it uses."""
    if route is None:
        return {}
    skr = eskr = 0
    qbers: list[float] = []
    stored: list[int] = []
    for leg in route.legs:
        metrics = [links[link] for link in leg.path.links if link in links]
        if not metrics:
            continue
        skr += min(m.skr for m in metrics)
        eskr += min(m.eskr for m in metrics)
        qbers += [m.qber for m in metrics if m.qber is not None]
        stored += [m.stored_bits for m in metrics if m.stored_bits is not None]
    perf: dict[str, Any] = {"skr": uint32(skr), "eskr": uint32(eskr)}
    if qbers:
        perf["phys_perf"] = [{"perf_type": f"{ETSI_TYPES_MODULE}:QBER",
                              "value": decimal3(max(qbers))}]
    if stored:
        perf["key_store"] = {"stored_key_bits": str(max(0, min(stored)))}
    return perf


def svc_link(view: SessionView, *, restoration: PathRestoration, restorations: int,
             links: Mapping[str, LinkMetrics], to_wall: Callable[[float], float]
             ) -> dict[str, Any]:
    """One ``svc_link`` entry. ``to_wall`` turns the admission clock (monotonic seconds)
    into epoch seconds."""
    local = view.initiator
    remote = view.responder
    entry: dict[str, Any] = {
        "qkdl_id": view.session_id,
        "qkdl_local": {"qkdn_id": local.node_id},
        "qkdl_status": identity(_STATUS[view.state]),
        "paths": paths_json(view)}
    if remote is not None:
        entry["qkdl_remote"] = {"qkdn_id": remote.node_id}
    details: dict[str, Any] = {
        "local_app": {"sae_id": local.sae_id, "user": local.user},
        "remote_app": ({"sae_id": remote.sae_id, "user": remote.user} if remote is not None
                       else {"sae_id": view.peer_sae_id}),
        "session_state": view.state.value,
        "bandwidth": uint32(view.rate_bps),
        "requested_bandwidth": uint32(_requested(view)),
        "priority": uint32(view.priority),
        "idle_timeout": uint32(view.idle_timeout_s),
        "creation_time": date_and_time(to_wall(view.created_at)),
        "path_restoration": {
            "restoration_type": f"{QKDN_ACC_MODULE}:{restoration.kind.value}",
            "hold_off_time": restoration.hold_off_ms},
        "restorations": restorations % 2**32,
    }
    if view.reason is not None:
        details["state_reason"] = (f"{view.reason.value}: {view.detail}" if view.detail
                                   else view.reason.value)
    if view.last_activity:
        details["last_activity"] = date_and_time(to_wall(view.last_activity))
    ttl = min([q.ttl_s for q in _qos(view) if q.ttl_s], default=0)
    if ttl and view.state is SessionState.ACTIVE and view.last_activity:
        details["expiration_time"] = date_and_time(to_wall(view.created_at) + ttl)
    perf = path_performance(view.route, links)
    delivered = dict(view.delivered)
    if delivered:   # totals over every kind of key (a key counts once for both ends)
        perf["keys_delivered"] = str(sum(keys for keys, _ in delivered.values()))
        perf["bits_delivered"] = str(sum(bits for _, bits in delivered.values()))
    if perf:
        details["qkdl_performance"] = perf
    details["key_provenance"] = key_provenance(view)
    entry[SVC_DETAILS] = details
    return entry


def key_provenance(view: SessionView) -> dict[str, Any]:
    """A session's ``key_provenance``: fallback policy, current key mode and keys/bits
    delivered per kind of key (ADR 0009)."""
    return {
        "fallback_policy": getattr(view.fallback, "value", str(view.fallback)),
        "key_mode": view.key_mode,
        "delivered": [{"provenance": kind, "keys": str(keys), "bits": str(bits)}
                      for kind, (keys, bits) in sorted(view.delivered.items())]}


def _qos(view: SessionView) -> list[Any]:
    ends = [view.initiator] + ([view.responder] if view.responder is not None else [])
    return [e.qos for e in ends]


def _requested(view: SessionView) -> int:
    """The rate the applications asked for: the smaller of their ``max_bps`` that name one."""
    asked = [q.max_bps for q in _qos(view) if q.max_bps]
    return min(asked) if asked else view.rate_bps


def svc_links_state(views: Iterable[SessionView], *,
                    restoration_of: Callable[[SessionView], PathRestoration],
                    restorations: Mapping[str, int], links: Mapping[str, LinkMetrics],
                    to_wall: Callable[[float], float]) -> dict[str, Any]:
    """``qkd_network/qkd_links/svc_links`` with every session given (RFC 7951 JSON)."""
    entries = [svc_link(v, restoration=restoration_of(v) or DEFAULT_RESTORATION,
                        restorations=restorations.get(v.session_id, 0), links=links,
                        to_wall=to_wall)
               for v in sorted(views, key=lambda v: v.session_id)]
    return {NETWORK: {"qkd_links": {"svc_links": {"svc_link": entries}}}}


def sessions_by_link(views: Iterable[SessionView]) -> dict[str, int]:
    """How many open sessions each physical link carries."""
    counts: dict[str, int] = {}
    for view in views:
        if view.route is None or view.state is SessionState.TERMINATED:
            continue
        for link in view.route.link_rates():
            counts[link] = counts.get(link, 0) + 1
    return counts
