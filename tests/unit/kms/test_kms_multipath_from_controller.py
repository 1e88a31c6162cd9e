"""The controller's multipath configuration, applied to each node's datastore (libyang), gives
every KM the legs it needs: the two ends agree on the session and its legs, and following the
rules leg by leg from the source reaches the destination over each route leg."""

from kms.forwarding import build_forwarding_table
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from sdn_controller.config_payloads import session_config_payload
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import build_graph, max_rate, route_session
from sdn_controller.session_config import QoS, build_km_configs, token_bucket_for

N = {x: f"00000000-0000-4000-8000-00000000000{i}" for i, x in enumerate("abcde")}
SESSION = "5e55105e-0000-4000-8000-0000000000aa"


def link(i, a, b, skr):
    return LinkMetrics(f"10000000-0000-4000-8000-00000000000{i}", N[a], N[b], LinkStatus.ACTIVE,
                       skr=skr)


def test_controller_split_reaches_every_km_as_legs():
    links = [link(0, "a", "b", 6000), link(1, "b", "e", 6000), link(2, "a", "c", 4000),
             link(3, "c", "d", 4000), link(4, "d", "e", 4000), link(5, "b", "c", 1000)]
    graph = build_graph(links)
    rate = 9000
    assert max_rate(graph, N["a"], N["e"]) == 10_000
    route = route_session(graph, N["a"], N["e"], rate)
    assert route.is_multipath and route.rate_bps == rate
    configs = build_km_configs(session_id=SESSION, generation=0, route=route,
                               initiator=("sae-a", N["a"]), responder=("sae-e", N["e"]),
                               qos=QoS(max_bps=rate), priority=1, idle_timeout_s=60,
                               bucket=token_bucket_for(rate, burst_s=2.0))
    ctx = load_context()
    tables = {}
    for config in configs:
        store = Datastore(ctx, {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": config.node_id}})
        store.edit_config(session_config_payload(config))
        tables[config.node_id] = build_forwarding_table(store.running_json())
    source, destination = tables[N["a"]], tables[N["e"]]
    assert source.sessions[SESSION].sae_ids == destination.sessions[SESSION].sae_ids == \
        {"sae-a", "sae-e"}
    assert len(source.legs_of(SESSION)) == len(route.legs) == len(destination.legs_of(SESSION))
    assert sum(rule.bandwidth for rule in source.legs_of(SESSION)) == rate
    for rule in source.legs_of(SESSION):
        hops, sender, here = [N["a"]], None, N["a"]
        while True:   # follow this leg KM by KM, each knowing only its neighbours
            nxt = tables[here].rule(SESSION, rule.leg).forward_from(sender)
            if nxt is None:
                break
            sender, here = here, nxt
            hops.append(here)
        assert hops[-1] == N["e"]
        leg = next(leg for leg in route.legs if leg.rate_bps == rule.bandwidth and
                   tuple(leg.path.nodes) == tuple(hops))
        assert leg is not None
