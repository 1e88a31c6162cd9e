import doctest
import random

import networkx as nx
import pytest

from sdn_controller import routing
from sdn_controller.errors import InsufficientCapacityError, NoPathError, UnknownNodeError
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import (
    build_graph,
    compute_multipath,
    compute_path,
    compute_widest_path,
    hop_weight,
    key_aware_weight,
    make_key_aware_weight,
    max_rate,
    route_session,
)


def link(a, b, skr=100_000, **kw):
    kw.setdefault("status", LinkStatus.ACTIVE)
    return LinkMetrics(f"{a}-{b}", a, b, skr=skr, **kw)


def test_docstring_examples_run():
    result = doctest.testmod(routing)
    assert result.attempted >= 10 and result.failed == 0


def paper_star():
    return [link("0", n) for n in "12345"] + [link("4", "5")]


def test_star_goes_through_the_hub_and_adjacent_pairs_go_direct():
    g = build_graph(paper_star())
    assert compute_path(g, "2", "3").nodes == ("2", "0", "3")
    assert compute_path(g, "0", "1").nodes == ("0", "1")
    assert compute_path(g, "4", "5").nodes == ("4", "5")


@pytest.mark.parametrize("hidden", [
    {"status": LinkStatus.OFF}, {"status": LinkStatus.PENDING}, {"enabled": False},
    {"down_reason": "fiber cut"}, {"flag_reason": "QBER 0.2 above 0.11"},
    {"skr": 0, "stored_bits": 0},
])
@pytest.mark.parametrize("weight", [key_aware_weight, hop_weight, lambda u, v, d: 1.0])
def test_never_a_hidden_link_whatever_the_weight(hidden, weight):
    links = [link("a", "b", **hidden), link("b", "c"), link("a", "d"), link("d", "e"),
             link("e", "c")]
    g = build_graph(links)
    path = compute_path(g, "a", "c", weight=weight)
    assert "a-b" not in path.links and path.nodes == ("a", "d", "e", "c")
    assert "a-b" not in compute_widest_path(g, "a", "c", weight=weight).links
    route = compute_multipath(g, "a", "c", 50_000, weight=weight)
    assert all("a-b" not in leg.path.links for leg in route.legs)


def test_passive_link_with_stored_key_is_usable_but_out_of_key_is_not():
    g = build_graph([link("a", "b", skr=0, status=LinkStatus.PASSIVE, stored_bits=10**6)])
    with pytest.raises(NoPathError):  # no free rate: cannot carry a new session
        compute_path(g, "a", "b")
    g = build_graph([link("a", "b", skr=0, eskr=0, status=LinkStatus.PASSIVE, stored_bits=0)])
    assert not g.edges["a", "b"]["usable"]


def test_no_path_unknown_node_and_same_node():
    g = build_graph([link("a", "b", status=LinkStatus.OFF)], nodes=["c"])
    with pytest.raises(NoPathError):
        compute_path(g, "a", "b")
    with pytest.raises(NoPathError):
        compute_path(g, "a", "c")
    with pytest.raises(UnknownNodeError):
        compute_path(g, "a", "zz")
    with pytest.raises(NoPathError):
        compute_path(g, "a", "a")


def test_min_rate_skips_thin_links_and_reservations_reduce_capacity():
    links = [link("a", "b", skr=1_000), link("a", "c", skr=50_000), link("c", "b", skr=50_000)]
    g = build_graph(links)
    assert compute_path(g, "a", "b", weight=hop_weight).nodes == ("a", "b")
    assert compute_path(g, "a", "b", weight=hop_weight, min_rate_bps=5_000).nodes == \
        ("a", "c", "b")
    g = build_graph(links, reserved_bps={"a-c": 48_000})
    assert g.edges["a", "c"]["capacity_bps"] == 2_000
    with pytest.raises(NoPathError):
        compute_path(g, "a", "b", min_rate_bps=5_000)
    g = build_graph(links, reserved_bps={"a-c": 60_000})
    assert g.edges["a", "c"]["capacity_bps"] == 0


def test_key_aware_weight_prefers_low_qber_more_key_fewer_sessions():
    base = {"skr": 100_000, "qber": 0.01, "stored_bits": 10**6}
    g = build_graph([link("a", "b", **{**base, "qber": 0.09}), link("b", "d", **base),
                     link("a", "c", **base), link("c", "d", **base)])
    assert compute_path(g, "a", "d").nodes == ("a", "c", "d")
    g = build_graph([link("a", "b", **base), link("b", "d", **base),
                     link("a", "c", **{**base, "stored_bits": 0}), link("c", "d", **base)])
    assert compute_path(g, "a", "d").nodes == ("a", "b", "d")
    g = build_graph([link("a", "b", **base), link("b", "d", **base),
                     link("a", "c", **base), link("c", "d", **base)], sessions={"a-b": 5})
    assert compute_path(g, "a", "d").nodes == ("a", "c", "d")


def test_key_aware_weight_formula():
    g = build_graph([link("a", "b", skr=50_000, qber=0.055, stored_bits=10**6)],
                    sessions={"a-b": 2})
    w = key_aware_weight("a", "b", g.edges["a", "b"])
    assert w == pytest.approx(1 + 2 + 0.5 + 0.5 + 0.2)
    other = make_key_aware_weight(reference_rate_bps=50_000, qber_alarm=0.055)
    assert other("a", "b", g.edges["a", "b"]) == pytest.approx(1 + 1 + 1 + 0.5 + 0.2)


def test_widest_path_maximises_bottleneck():
    g = build_graph([link("a", "b", skr=10), link("a", "c", skr=500), link("c", "b", skr=400),
                     link("a", "d", skr=900), link("d", "b", skr=300)])
    p = compute_widest_path(g, "a", "b")
    assert p.nodes == ("a", "c", "b") and p.bottleneck_bps == 400


def diamond():
    return [link("s", "x", skr=30_000), link("x", "t", skr=30_000),
            link("s", "y", skr=20_000), link("y", "t", skr=25_000),
            link("s", "t", skr=5_000)]


def test_multipath_split_sums_to_rate_and_respects_capacity():
    g = build_graph(diamond())
    assert max_rate(g, "s", "t") == 55_000
    route = compute_multipath(g, "s", "t", 52_000)
    assert route.rate_bps == 52_000 and route.is_multipath
    for leg in route.legs:
        assert leg.path.nodes[0] == "s" and leg.path.nodes[-1] == "t"
        assert len(set(leg.path.nodes)) == len(leg.path.nodes)
    for link_id, rate in route.link_rates().items():
        u, v = link_id.split("-")
        assert rate <= g.edges[u, v]["capacity_bps"]


def test_multipath_above_max_flow_raises_with_the_bound():
    g = build_graph(diamond())
    with pytest.raises(InsufficientCapacityError) as err:
        compute_multipath(g, "s", "t", 55_001)
    assert err.value.available_bps == 55_000 and err.value.requested_bps == 55_001


def test_route_session_prefers_a_single_path():
    g = build_graph(diamond())
    r = route_session(g, "s", "t", 10_000)
    assert not r.is_multipath and r.legs[0].rate_bps == 10_000
    r = route_session(g, "s", "t", 40_000)
    assert r.is_multipath and r.rate_bps == 40_000
    with pytest.raises(InsufficientCapacityError) as err:
        route_session(g, "s", "t", 40_000, allow_multipath=False)
    assert err.value.available_bps == 30_000


def test_random_graphs_multipath_never_exceeds_capacity_or_uses_closed_links():
    rng = random.Random(7)
    for trial in range(25):
        base = nx.gnm_random_graph(12, 24, seed=trial)
        links = []
        for u, v in base.edges:
            closed = rng.random() < 0.2
            links.append(LinkMetrics(f"{u}-{v}", str(u), str(v),
                                     LinkStatus.OFF if closed else LinkStatus.ACTIVE,
                                     skr=rng.randint(1, 50) * 1000))
        g = build_graph(links, nodes=[str(n) for n in range(12)])
        try:
            available = max_rate(g, "0", "11")
        except NoPathError:
            continue
        if available == 0:
            with pytest.raises(NoPathError):
                compute_multipath(g, "0", "11", 1000)
            continue
        rate = max(1, available * rng.randint(1, 10) // 10)
        route = compute_multipath(g, "0", "11", rate)
        assert route.rate_bps == rate
        for link_id, r in route.link_rates().items():
            u, v = link_id.split("-")
            assert g.edges[u, v]["usable"]
            assert r <= g.edges[u, v]["capacity_bps"]
        with pytest.raises(InsufficientCapacityError):
            compute_multipath(g, "0", "11", available + 1)


def test_exact_split_when_the_greedy_one_falls_short():
    # cheapest first path s-a-b-t uses the cross link; afterwards s-b and a-t remain but do
    # not join: only the exact min-cost flow finds s-a-t + s-b-t
    links = [link("s", "a", skr=1000), link("a", "t", skr=1000), link("s", "b", skr=1000),
             link("b", "t", skr=1000), link("a", "b", skr=1000)]
    costly = {frozenset(("a", "t")), frozenset(("s", "b"))}

    def weight(u, v, d):
        return 10.0 if frozenset((u, v)) in costly else 1.0

    g = build_graph(links)
    route = compute_multipath(g, "s", "t", 2000, weight=weight)
    assert sorted(leg.path.nodes for leg in route.legs) == [("s", "a", "t"), ("s", "b", "t")]
    assert route.rate_bps == 2000
    assert routing._greedy_split(g, "s", "t", 2000, weight) is None


def test_graph_router_applies_reservations_and_follows_link_changes():
    from dataclasses import replace

    from sdn_controller.routing import GraphRouter
    links = {lk.qkdl_id: lk for lk in diamond()}
    router = GraphRouter(lambda: list(links.values()))
    assert router("s", "t", 10_000).legs[0].path.nodes == ("s", "x", "t")
    # 25 kbit/s of s-x promised elsewhere: the session goes the other way
    r = router("s", "t", 10_000, reserved_bps={"s-x": 25_000}, sessions={"s-x": 3})
    assert r.legs[0].path.nodes == ("s", "y", "t")
    g = router.graph(reserved_bps={"s-x": 25_000})
    assert g.edges["s", "x"]["capacity_bps"] == 5_000
    # reservations are not sticky: the next call without them sees full capacity again
    assert router.graph().edges["s", "x"]["capacity_bps"] == 30_000
    links["s-x"] = replace(links["s-x"], down_reason="cut")  # a new value: graph rebuilt
    assert router("s", "t", 10_000).legs[0].path.nodes == ("s", "y", "t")
    with pytest.raises(InsufficientCapacityError):
        router("s", "t", 30_000, reserved_bps={"s-t": 5_000})
