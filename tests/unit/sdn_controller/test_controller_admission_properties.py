"""Property tests: whatever the sequence of opens, closes and expiries on a random network,
reservations never exceed a link's key rate, always equal what active sessions' routes hold,
and no route crosses an unusable link."""

import itertools

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdn_controller.admission_control import AdmissionControl, ConfigRequest, SessionState
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import GraphRouter
from sdn_controller.session_config import QoS
from sdn_controller.user_db import SlaProfile, UserDb

NODES = 8


def network(seed, closed_fraction):
    base = nx.gnm_random_graph(NODES, 14, seed=seed)
    links = []
    for i, (u, v) in enumerate(base.edges):
        status = LinkStatus.OFF if (i * 7 + seed) % 10 < closed_fraction * 10 else \
            LinkStatus.ACTIVE
        links.append(LinkMetrics(f"l{i}", f"n{u}", f"n{v}", status,
                                 skr=1000 * (1 + (i * 13 + seed) % 20)))
    return links


operations = st.lists(st.tuples(st.sampled_from(["open", "close", "idle"]),
                                st.integers(0, NODES - 1), st.integers(0, NODES - 1),
                                st.integers(1, 30)), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 50), closed=st.sampled_from([0.0, 0.2, 0.4]), ops=operations,
       lower=st.booleans())
def test_reservations_stay_within_capacity_and_match_routes(seed, closed, ops, lower):
    links = network(seed, closed)
    by_id = {lk.qkdl_id: lk for lk in links}
    db = UserDb.open()
    db.add_sla(SlaProfile("s", max_bps=30_000, max_sessions=1000, idle_timeout_s=10,
                          allow_lower_rate=lower))
    for n in range(NODES):
        db.add_user(f"u{n}", "s")
        db.add_application(f"sae-{n}", f"u{n}", f"n{n}")
    now = [0.0]
    ids = (f"s{i}" for i in itertools.count())
    ac = AdmissionControl(db, GraphRouter(lambda: links), clock=lambda: now[0],
                          new_session_id=lambda: next(ids))
    for op, a, b, amount in ops:
        if op == "open" and a != b:
            qos = QoS(max_bps=amount * 1000, min_bps=1000)
            ac.request_config(ConfigRequest(f"n{a}", f"sae-{a}", f"sae-{b}", f"u{a}", "s", qos))
            ac.request_config(ConfigRequest(f"n{b}", f"sae-{b}", f"sae-{a}", f"u{b}", "s", qos))
        elif op == "close":
            active = [s for s in ac.sessions() if s.state is SessionState.ACTIVE]
            if active:
                ac.close(active[amount % len(active)].session_id)
        else:
            now[0] += amount / 3
            ac.expire()
        reserved = ac.ledger.reserved_by_link()
        for link_id, rate in reserved.items():
            assert rate <= by_id[link_id].key_rate_bps
        expected = {}
        for s in ac.sessions():
            if s.state is SessionState.ACTIVE and s.route is not None:
                assert s.rate_bps == s.route.rate_bps
                for link_id, rate in s.route.link_rates().items():
                    assert by_id[link_id].usable
                    expected[link_id] = expected.get(link_id, 0) + rate
        assert expected == reserved
    db.close()
