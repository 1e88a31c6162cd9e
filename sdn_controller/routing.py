"""Routing element: paths for key-association sessions over the graph of physical QKD links.

Plain functions over a :mod:`networkx` graph, in the manner of networkx's own shortest-path
functions: the link cost is a strategy passed as ``weight=`` (a callable ``(u, v, data) ->
float | None``; ``None`` hides the edge) and failures are specific exceptions
(:class:`~sdn_controller.errors.NoPathError`,
:class:`~sdn_controller.errors.InsufficientCapacityError`).

The graph (:func:`build_graph`) has one node per ``qkdn_id`` and one edge per physical link.
Edge data: ``qkdl_id``, ``metrics`` (:class:`~sdn_controller.link_metrics.LinkMetrics`),
``reserved_bps`` (key rate already promised to sessions), ``sessions`` (how many sessions use
the link), ``capacity_bps`` (free key rate = link key rate - reserved, never negative) and
``usable``. Whatever weight strategy is passed, an edge that is not ``usable`` (down, out of
key, disabled, flagged by monitoring) or has no free capacity is never used.

Link cost of :func:`key_aware_weight` (all terms dimensionless, one hop = 1)::

    w(e) = 1 + R_ref / C(e) + q(e) / q_alarm + S_ref / (S(e) + S_ref) + n(e) / N_ref

with C(e) the free key rate (bit/s), q(e) the QBER (0 when unknown), S(e) the stored key
(bits; the term is 1/2 when unknown), n(e) the sessions using the link, and the references
R_ref = 100 kbit/s, q_alarm = 0.11, S_ref = 1 Mbit, N_ref = 10
(:func:`make_key_aware_weight` sets others). A link with 100 kbit/s free therefore costs as
much as one extra hop, one with 10 kbit/s free as ten.

Examples
--------
>>> from sdn_controller.link_metrics import LinkMetrics, LinkStatus
>>> links = [LinkMetrics("l-ab", "a", "b", LinkStatus.ACTIVE, skr=50_000),
...          LinkMetrics("l-bc", "b", "c", LinkStatus.ACTIVE, skr=50_000),
...          LinkMetrics("l-ac", "a", "c", LinkStatus.ACTIVE, skr=2_000)]
>>> graph = build_graph(links)
>>> compute_path(graph, "a", "c").nodes          # two good hops beat one poor hop
('a', 'b', 'c')
>>> compute_path(graph, "a", "c", weight=hop_weight).links
('l-ac',)
>>> route = route_session(graph, "a", "c", 51_000)  # more than one path carries: split
>>> sorted((leg.path.nodes, leg.rate_bps) for leg in route.legs)
[(('a', 'b', 'c'), 50000), (('a', 'c'), 1000)]
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from sdn_controller.errors import InsufficientCapacityError, NoPathError, UnknownNodeError
from sdn_controller.identifiers import LinkId, NodeId
from sdn_controller.link_metrics import LinkMetrics

#: ``weight(u, v, edge_data) -> cost``; ``None`` hides the edge.
Weight = Callable[[Any, Any, dict[str, Any]], float | None]

REFERENCE_RATE_BPS = 100_000
QBER_ALARM = 0.11
REFERENCE_STORED_BITS = 1_000_000
REFERENCE_SESSIONS = 10


@dataclass(frozen=True)
class Path:
    """A loop-free chain of physical links from ``nodes[0]`` to ``nodes[-1]``.

    ``bottleneck_bps`` is the smallest free capacity along it; ``cost`` its total weight."""

    nodes: tuple[NodeId, ...]
    links: tuple[LinkId, ...]
    bottleneck_bps: int
    cost: float

    @property
    def hops(self) -> int:
        return len(self.links)

    @property
    def source(self) -> NodeId:
        return self.nodes[0]

    @property
    def destination(self) -> NodeId:
        return self.nodes[-1]


@dataclass(frozen=True)
class RouteLeg:
    """One path of a route and the key rate it carries."""

    path: Path
    rate_bps: int


@dataclass(frozen=True)
class Route:
    """The path(s) of one session: one leg normally, several when split (multipath)."""

    legs: tuple[RouteLeg, ...]

    @property
    def rate_bps(self) -> int:
        return sum(leg.rate_bps for leg in self.legs)

    @property
    def is_multipath(self) -> bool:
        return len(self.legs) > 1

    def link_rates(self) -> dict[LinkId, int]:
        """Key rate the route puts on each physical link (summed over legs)."""
        rates: dict[LinkId, int] = {}
        for leg in self.legs:
            for link in leg.path.links:
                rates[link] = rates.get(link, 0) + leg.rate_bps
        return rates

    def nodes(self) -> frozenset[NodeId]:
        return frozenset(n for leg in self.legs for n in leg.path.nodes)


# --- graph -----------------------------------------------------------------------------------
def build_graph(links: Iterable[LinkMetrics], *, nodes: Iterable[NodeId] = (),
                reserved_bps: Mapping[LinkId, int] | None = None,
                sessions: Mapping[LinkId, int] | None = None) -> nx.Graph:
    """The routing graph of ``links`` with the reservations and session counts applied.

    ``nodes`` adds nodes that have no link yet. Should two links join the same pair of nodes,
    the one with more free capacity among the usable ones is kept.
    """
    reserved_bps = reserved_bps or {}
    sessions = sessions or {}
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    for link in links:
        reserved = int(reserved_bps.get(link.qkdl_id, 0))
        data = {
            "qkdl_id": link.qkdl_id,
            "metrics": link,
            "reserved_bps": reserved,
            "sessions": int(sessions.get(link.qkdl_id, 0)),
            "capacity_bps": max(0, link.key_rate_bps - reserved),
            "usable": link.usable,
        }
        if graph.has_edge(link.node_a, link.node_b):
            old = graph.edges[link.node_a, link.node_b]
            if (old["usable"], old["capacity_bps"]) >= (data["usable"], data["capacity_bps"]):
                continue
        graph.add_edge(link.node_a, link.node_b, **data)
    return graph


def edge_is_open(data: Mapping[str, Any], min_rate_bps: int = 0) -> bool:
    """True if the edge may carry a new session needing ``min_rate_bps``."""
    return bool(data.get("usable")) and data.get("capacity_bps", 0) > 0 and \
        data.get("capacity_bps", 0) >= min_rate_bps


# --- weight strategies -----------------------------------------------------------------------
def hop_weight(u: Any, v: Any, data: dict[str, Any]) -> float | None:
    """Every open link costs 1 (fewest trusted nodes)."""
    return 1.0 if edge_is_open(data) else None


def make_key_aware_weight(*, reference_rate_bps: float = REFERENCE_RATE_BPS,
                          qber_alarm: float = QBER_ALARM,
                          reference_stored_bits: float = REFERENCE_STORED_BITS,
                          reference_sessions: float = REFERENCE_SESSIONS) -> Weight:
    """A key-aware weight with other reference values (formula in the module docstring)."""

    def key_aware(u: Any, v: Any, data: dict[str, Any]) -> float | None:
        if not edge_is_open(data):
            return None
        metrics: LinkMetrics = data["metrics"]
        cost = 1.0 + reference_rate_bps / data["capacity_bps"]
        if metrics.qber is not None:
            cost += metrics.qber / qber_alarm
        if metrics.stored_bits is None:
            cost += 0.5
        else:
            cost += reference_stored_bits / (metrics.stored_bits + reference_stored_bits)
        cost += data.get("sessions", 0) / reference_sessions
        return cost

    return key_aware


#: The default strategy: key rate, QBER, stored key and load (module docstring).
key_aware_weight: Weight = make_key_aware_weight()


def _guarded(weight: Weight, min_rate_bps: int) -> Weight:
    """``weight``, but closed edges (and edges too thin for ``min_rate_bps``) always hidden."""

    def guarded(u: Any, v: Any, data: dict[str, Any]) -> float | None:
        if not edge_is_open(data, min_rate_bps):
            return None
        return weight(u, v, data)

    return guarded


def _check_ends(graph: nx.Graph, src: NodeId, dst: NodeId) -> None:
    for node in (src, dst):
        if node not in graph:
            raise UnknownNodeError(node)
    if src == dst:
        raise NoPathError(src, dst, "source and destination are the same node")


def _path_of(graph: nx.Graph, nodes: list[NodeId], weight: Weight) -> Path:
    edges = [graph.edges[u, v] for u, v in itertools.pairwise(nodes)]
    cost = sum(float(weight(u, v, d) or 0.0)
               for (u, v), d in zip(itertools.pairwise(nodes), edges, strict=True))
    return Path(tuple(nodes), tuple(d["qkdl_id"] for d in edges),
                min(d["capacity_bps"] for d in edges), cost)


# --- single path -----------------------------------------------------------------------------
def compute_path(graph: nx.Graph, src: NodeId, dst: NodeId, *,
                 weight: Weight = key_aware_weight, min_rate_bps: int = 0) -> Path:
    """The cheapest path under ``weight`` whose every link has ``min_rate_bps`` free.

    Raises :class:`UnknownNodeError` or :class:`NoPathError`.

    >>> from sdn_controller.link_metrics import LinkMetrics, LinkStatus
    >>> g = build_graph([LinkMetrics("l1", "a", "b", LinkStatus.ACTIVE, skr=1000),
    ...                  LinkMetrics("l2", "b", "c", LinkStatus.OFF, skr=1000)])
    >>> compute_path(g, "a", "b").links
    ('l1',)
    >>> compute_path(g, "a", "c")
    Traceback (most recent call last):
    ...
    sdn_controller.errors.NoPathError: no usable path from a to c
    """
    _check_ends(graph, src, dst)
    guarded = _guarded(weight, min_rate_bps)
    try:
        _, nodes = nx.bidirectional_dijkstra(graph, src, dst, weight=guarded)
    except nx.NetworkXNoPath:
        detail = f"none with {min_rate_bps} bit/s free on every link" if min_rate_bps else ""
        raise NoPathError(src, dst, detail) from None
    return _path_of(graph, nodes, guarded)


def compute_widest_path(graph: nx.Graph, src: NodeId, dst: NodeId, *,
                        weight: Weight = key_aware_weight) -> Path:
    """The path with the largest bottleneck free capacity (ties: the cheaper under ``weight``).

    >>> from sdn_controller.link_metrics import LinkMetrics, LinkStatus
    >>> g = build_graph([LinkMetrics("ab", "a", "b", LinkStatus.ACTIVE, skr=10),
    ...                  LinkMetrics("ac", "a", "c", LinkStatus.ACTIVE, skr=500),
    ...                  LinkMetrics("cb", "c", "b", LinkStatus.ACTIVE, skr=400)])
    >>> p = compute_widest_path(g, "a", "b")
    >>> p.nodes, p.bottleneck_bps
    (('a', 'c', 'b'), 400)
    """
    _check_ends(graph, src, dst)
    guarded = _guarded(weight, 0)
    best: dict[NodeId, tuple[int, float]] = {src: (10**18, 0.0)}
    previous: dict[NodeId, NodeId] = {}
    counter = itertools.count()
    heap: list[tuple[int, float, int, NodeId]] = [(-(10**18), 0.0, next(counter), src)]
    done: set[NodeId] = set()
    while heap:
        neg_width, cost, _, node = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        if node == dst:
            break
        for nbr, data in graph[node].items():
            if nbr in done:
                continue
            w = guarded(node, nbr, data)
            if w is None:
                continue
            cand = (min(-neg_width, data["capacity_bps"]), cost + w)
            old = best.get(nbr)
            if old is None or cand[0] > old[0] or (cand[0] == old[0] and cand[1] < old[1]):
                best[nbr] = cand
                previous[nbr] = node
                heapq.heappush(heap, (-cand[0], cand[1], next(counter), nbr))
    if dst not in done:
        raise NoPathError(src, dst)
    nodes = [dst]
    while nodes[-1] != src:
        nodes.append(previous[nodes[-1]])
    return _path_of(graph, nodes[::-1], guarded)


# --- multipath -------------------------------------------------------------------------------
def _flow_network(graph: nx.Graph, weight: Weight) -> nx.DiGraph:
    guarded = _guarded(weight, 0)
    net = nx.DiGraph()
    for u, v, data in graph.edges(data=True):
        w = guarded(u, v, data)
        if w is None:
            continue
        cost = max(1, round(w * 1000))
        net.add_edge(u, v, capacity=int(data["capacity_bps"]), weight=cost)
        net.add_edge(v, u, capacity=int(data["capacity_bps"]), weight=cost)
    return net


def max_rate(graph: nx.Graph, src: NodeId, dst: NodeId, *,
             weight: Weight = key_aware_weight) -> int:
    """The most key rate (bit/s) that could be routed from ``src`` to ``dst`` (max-flow)."""
    _check_ends(graph, src, dst)
    net = _flow_network(graph, weight)
    if src not in net or dst not in net:
        return 0
    return int(nx.maximum_flow_value(net, src, dst))


_SUPER_SOURCE = ("qkdn-routing", "super-source")


def compute_multipath(graph: nx.Graph, src: NodeId, dst: NodeId, rate_bps: int, *,
                      weight: Weight = key_aware_weight) -> Route:
    """Split ``rate_bps`` over several paths.

    First successive cheapest paths under ``weight`` over the remaining capacities (fast);
    if that greedy split falls short although the max-flow bound allows the rate, an exact
    min-cost flow of ``rate_bps`` (network simplex), decomposed into paths. Each leg is a
    simple path with the rate it carries; the legs' rates sum to ``rate_bps`` and the rates
    the legs put on a link never exceed its free capacity. Raises
    :class:`NoPathError` when ``src`` cannot reach ``dst`` at all and
    :class:`InsufficientCapacityError` (with the max-flow value) when the rate is too high.
    """
    _check_ends(graph, src, dst)
    if rate_bps <= 0:
        raise ValueError("rate_bps must be positive")
    guarded = _guarded(weight, 0)
    legs = _greedy_split(graph, src, dst, rate_bps, guarded)
    if legs is None:
        net = _flow_network(graph, weight)
        if src not in net or dst not in net or not nx.has_path(net, src, dst):
            raise NoPathError(src, dst)
        available = int(nx.maximum_flow_value(net, src, dst))
        if available < rate_bps:
            raise InsufficientCapacityError(src, dst, rate_bps, available)
        legs = _min_cost_split(graph, net, src, dst, rate_bps, guarded)
    legs.sort(key=lambda leg: (-leg.rate_bps, leg.path.nodes))
    return Route(tuple(legs))


def _greedy_split(graph: nx.Graph, src: NodeId, dst: NodeId, rate_bps: int, weight: Weight,
                  max_legs: int = 16) -> list[RouteLeg] | None:
    """Successive cheapest paths over the remaining capacities (fast; weight-aware). None
    when it does not reach ``rate_bps`` (greedy can miss a feasible split)."""
    remaining_cap: dict[frozenset, int] = {}
    amounts: dict[tuple, int] = {}

    def residual_weight(u: Any, v: Any, data: dict[str, Any]) -> float | None:
        if remaining_cap.get(frozenset((u, v)), data["capacity_bps"]) <= 0:
            return None
        return weight(u, v, data)

    remaining = rate_bps
    for _ in range(max_legs):
        try:
            _, nodes = nx.bidirectional_dijkstra(graph, src, dst, weight=residual_weight)
        except nx.NetworkXNoPath:
            return None
        edges = [frozenset(e) for e in itertools.pairwise(nodes)]
        caps = [remaining_cap.get(e, graph.edges[tuple(e)]["capacity_bps"]) for e in edges]
        amount = min(min(caps), remaining)
        for e, cap in zip(edges, caps):
            remaining_cap[e] = cap - amount
        amounts[tuple(nodes)] = amounts.get(tuple(nodes), 0) + amount
        remaining -= amount
        if remaining == 0:
            return [RouteLeg(_path_of(graph, list(nodes), weight), amount)
                    for nodes, amount in amounts.items()]
    return None


def _min_cost_split(graph: nx.Graph, net: nx.DiGraph, src: NodeId, dst: NodeId,
                    rate_bps: int, weight: Weight) -> list[RouteLeg]:
    """Exact split: a min-cost flow of ``rate_bps`` (network simplex), decomposed."""
    net.add_edge(_SUPER_SOURCE, src, capacity=int(rate_bps), weight=0)
    flow = nx.max_flow_min_cost(net, _SUPER_SOURCE, dst)
    residual: dict[Any, dict[Any, int]] = {u: {v: f for v, f in nbrs.items() if f > 0}
                                           for u, nbrs in flow.items() if u != _SUPER_SOURCE}
    # cancel flow in both directions of one link (never useful, cannot be a relay order)
    for u in list(residual):
        for v in list(residual[u]):
            back = residual.get(v, {}).get(u, 0)
            if back and residual[u].get(v, 0):
                m = min(back, residual[u][v])
                residual[u][v] -= m
                residual[v][u] -= m
    legs = []
    remaining = rate_bps
    while remaining > 0:
        nodes = _flow_path(residual, src, dst)
        if nodes is None:  # cannot happen for a valid flow; defend anyway
            raise InsufficientCapacityError(src, dst, rate_bps, rate_bps - remaining)
        amount = min(residual[u][v] for u, v in itertools.pairwise(nodes))
        for u, v in itertools.pairwise(nodes):
            residual[u][v] -= amount
        legs.append(RouteLeg(_path_of(graph, nodes, weight), amount))
        remaining -= amount
    return legs


def _flow_path(residual: Mapping[Any, Mapping[Any, int]], src: Any, dst: Any) -> list | None:
    """A simple src→dst path through edges with positive remaining flow (DFS)."""
    stack = [(src, [src])]
    seen = {src}
    while stack:
        node, nodes = stack.pop()
        if node == dst:
            return nodes
        for nbr, f in residual.get(node, {}).items():
            if f > 0 and nbr not in seen:
                seen.add(nbr)
                stack.append((nbr, nodes + [nbr]))
    return None


def route_session(graph: nx.Graph, src: NodeId, dst: NodeId, rate_bps: int, *,
                  weight: Weight = key_aware_weight, allow_multipath: bool = True) -> Route:
    """A route for a session needing ``rate_bps``: one path if one can carry it, else (when
    allowed) several paths from :func:`compute_multipath`.

    Raises :class:`NoPathError` or :class:`InsufficientCapacityError` (``available_bps`` is
    then the most that could be admitted: the widest single path's bottleneck, or the max-flow
    value when multipath is allowed)."""
    try:
        path = compute_path(graph, src, dst, weight=weight, min_rate_bps=max(rate_bps, 0))
        return Route((RouteLeg(path, rate_bps),))
    except NoPathError:
        pass
    if allow_multipath:
        return compute_multipath(graph, src, dst, rate_bps, weight=weight)
    widest = compute_widest_path(graph, src, dst, weight=weight)  # NoPathError if none
    raise InsufficientCapacityError(src, dst, rate_bps, widest.bottleneck_bps)


class GraphRouter:
    """The routing element as admission control calls it: ``router(src, dst, rate_bps,
    reserved_bps=..., sessions=...) -> Route``.

    ``links`` returns the current :class:`LinkMetrics` (the topology database). The graph is
    rebuilt only when a link changed (the database hands out new frozen values on every
    change); reservations and session counts are applied to it on every call, so a link's
    capacity already promised to other sessions is never offered twice. Thread-safe.
    """

    def __init__(self, links: Callable[[], Iterable[LinkMetrics]], *,
                 weight: Weight = key_aware_weight, allow_multipath: bool = True) -> None:
        self._links = links
        self.weight = weight
        self.allow_multipath = allow_multipath
        self._lock = threading.Lock()
        self._built_from: list[LinkMetrics] = []
        self._graph: nx.Graph | None = None
        self._data_of: dict[LinkId, dict[str, Any]] = {}
        self._loaded: set[LinkId] = set()

    def _current(self, reserved_bps: Mapping[LinkId, int],
                 sessions: Mapping[LinkId, int]) -> nx.Graph:
        links = list(self._links())
        if self._graph is None or len(links) != len(self._built_from) or \
                any(a is not b for a, b in zip(links, self._built_from)):
            self._graph = build_graph(links)
            self._built_from = links
            self._data_of = {d["qkdl_id"]: d for _, _, d in self._graph.edges(data=True)}
            self._loaded = set()
        graph = self._graph
        data_of = self._data_of
        for link in self._loaded | reserved_bps.keys() | sessions.keys():
            data = data_of.get(link)
            if data is None:
                continue
            reserved = int(reserved_bps.get(link, 0))
            count = int(sessions.get(link, 0))
            if data["reserved_bps"] != reserved or data["sessions"] != count:
                data["reserved_bps"] = reserved
                data["sessions"] = count
                data["capacity_bps"] = max(0, data["metrics"].key_rate_bps - reserved)
        self._loaded = set(reserved_bps) | set(sessions)
        return graph

    def graph(self, *, reserved_bps: Mapping[LinkId, int] | None = None,
              sessions: Mapping[LinkId, int] | None = None) -> nx.Graph:
        """A copy of the routing graph with these reservations applied."""
        with self._lock:
            return self._current(reserved_bps or {}, sessions or {}).copy()

    def __call__(self, src: NodeId, dst: NodeId, rate_bps: int, *,
                 reserved_bps: Mapping[LinkId, int] | None = None,
                 sessions: Mapping[LinkId, int] | None = None) -> Route:
        with self._lock:
            graph = self._current(reserved_bps or {}, sessions or {})
            return route_session(graph, src, dst, rate_bps, weight=self.weight,
                                 allow_multipath=self.allow_multipath)
