import doctest
import itertools

import pytest

from sdn_controller import admission_control
from sdn_controller.admission_control import (
    AdmissionControl,
    AdmissionPolicy,
    AdmissionReason,
    ConfigRequest,
    Configured,
    Refused,
    Rerouted,
    SessionState,
    Terminated,
    Waiting,
    check_qos,
)
from sdn_controller.errors import SessionStateError, UnknownSessionError
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import GraphRouter
from sdn_controller.session_config import KmRole, QoS
from sdn_controller.user_db import SlaProfile, UserDb


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Links:
    """A mutable set of links the router reads (stands for the topology DB)."""

    def __init__(self, links):
        self.links = {lk.qkdl_id: lk for lk in links}

    def __call__(self):
        return list(self.links.values())

    def set(self, qkdl_id, **changes):
        from dataclasses import replace
        self.links[qkdl_id] = replace(self.links[qkdl_id], **changes)


def link(a, b, skr=100_000):
    return LinkMetrics(f"{a}-{b}", a, b, LinkStatus.ACTIVE, skr=skr)


@pytest.fixture
def directory():
    db = UserDb.open()
    db.add_sla(SlaProfile("std", max_bps=50_000, min_bps=1_000, max_priority=5,
                          max_sessions=2, idle_timeout_s=60))
    db.add_sla(SlaProfile("strict", max_bps=50_000, min_bps=1_000, max_priority=5,
                          idle_timeout_s=30, allow_lower_rate=False))
    for i in range(6):
        db.add_user(f"u{i}", "std")
        db.add_application(f"sae-{i}", f"u{i}", f"n{i}")
    db.add_user("s", "strict")
    db.add_application("sae-s", "s", "n4")
    yield db
    db.close()


def paper_links():
    return Links([link("n0", f"n{i}") for i in range(1, 6)] + [link("n4", "n5")])


def make(directory, links=None, **policy):
    clock = FakeClock()
    ids = (f"sess-{i}" for i in itertools.count())
    ac = AdmissionControl(directory, GraphRouter(links or paper_links()), clock=clock,
                          policy=AdmissionPolicy(**policy), new_session_id=lambda: next(ids))
    return ac, clock


DEFAULT_QOS = QoS(max_bps=10_000, min_bps=1_000, priority=3)


def req(i, j, qos=DEFAULT_QOS, user=None, sla="std", sid=None):
    return ConfigRequest(f"n{i}", f"sae-{i}", f"sae-{j}", user or f"u{i}", sla, qos, sid)


def open_pair(ac, i, j, **kw):
    first = ac.request_config(req(i, j, **kw))
    assert isinstance(first, Waiting)
    second = ac.request_config(req(j, i, sid=first.session_id, **kw))
    return first, second


def test_waits_for_peer_before_reserving_anything(directory):
    ac, _ = make(directory)
    first = ac.request_config(req(2, 3))
    assert isinstance(first, Waiting) and first.node_id == "n2"
    assert ac.session(first.session_id).state is SessionState.ACCEPTED
    assert len(ac.ledger) == 0 and ac.session(first.session_id).route is None
    second = ac.request_config(req(3, 2))  # pairs by SAE ids even without the KSID
    assert isinstance(second, Configured) and second.session_id == first.session_id
    assert second.reason is AdmissionReason.ADMITTED and second.rate_bps == 10_000
    view = ac.session(first.session_id)
    assert view.state is SessionState.ACTIVE
    assert view.route.legs[0].path.nodes == ("n2", "n0", "n3")
    assert ac.ledger.reserved_by_link() == {"n0-n2": 10_000, "n0-n3": 10_000}


def test_configuration_per_km_two_hops(directory):
    ac, _ = make(directory)
    _, done = open_pair(ac, 2, 3)
    by_node = {c.node_id: c for c in done.configs}
    assert set(by_node) == {"n2", "n0", "n3"}
    src, relay, dst = by_node["n2"], by_node["n0"], by_node["n3"]
    assert (src.role, relay.role, dst.role) == (KmRole.SOURCE, KmRole.RELAY, KmRole.DESTINATION)
    assert relay.app is None and src.app.local_sae_id == "sae-2" and dst.app.local_sae_id == "sae-3"
    assert src.app.server_sae_id == dst.app.server_sae_id == "sae-2"
    (h_src,), (h_relay,), (h_dst,) = src.hops, relay.hops, dst.hops
    assert h_src.link_id == h_relay.link_id == h_dst.link_id
    assert src.app.backing_links == (h_src.link_id,)
    assert (h_src.prev_node, h_src.next_node) == (None, "n0")
    assert (h_relay.prev_node, h_relay.next_node) == ("n2", "n3")
    assert (h_dst.prev_node, h_dst.next_node) == ("n0", None)
    for c in done.configs:
        assert c.priority == 3 and c.idle_timeout_s == 60 and c.session_id == done.session_id
        assert c.bucket.rate_bps == 10_000 and c.bucket.size_bits == 20_000


def test_adjacent_nodes_use_the_physical_link(directory):
    ac, _ = make(directory)
    _, done = open_pair(ac, 4, 5)
    assert {c.node_id for c in done.configs} == {"n4", "n5"}
    assert all(c.hops == () and c.app.backing_links == ("n4-n5",) for c in done.configs)


def test_qos_above_sla_refused_with_counter_proposal(directory):
    ac, _ = make(directory)
    out = ac.request_config(req(2, 3, qos=QoS(max_bps=90_000, priority=9)))
    assert isinstance(out, Refused) and out.reason is AdmissionReason.QOS_ABOVE_SLA
    assert out.status == 7
    assert (out.counter_proposal.max_bps, out.counter_proposal.priority) == (50_000, 5)
    assert ac.sessions() == [] and len(ac.ledger) == 0


def test_check_qos_and_doctests():
    sla = SlaProfile("x", max_bps=10, max_priority=1)
    assert check_qos(QoS(max_bps=10, priority=1), sla).ok
    assert not check_qos(QoS(max_bps=11), sla).ok
    assert doctest.testmod(admission_control).failed == 0


def test_unknown_sla_and_session_limit(directory):
    ac, _ = make(directory)
    assert ac.request_config(req(2, 3, sla="nope")).reason is AdmissionReason.UNKNOWN_SLA
    open_pair(ac, 2, 3)
    ac.request_config(req(2, 1))
    out = ac.request_config(req(2, 4))  # third session of u2, SLA allows 2
    assert isinstance(out, Refused) and out.reason is AdmissionReason.SESSION_LIMIT
    assert out.status == 4


def test_ksid_in_use(directory):
    ac, _ = make(directory)
    first, _ = open_pair(ac, 2, 3)
    out = ac.request_config(req(1, 2, sid=first.session_id))
    assert isinstance(out, Refused) and out.status == 5


def test_idle_timer_reset_by_key_requests_then_expiry(directory):
    ac, clock = make(directory)
    _, done = open_pair(ac, 2, 3)
    sid = done.session_id
    for _ in range(5):
        clock.advance(59)
        ac.key_request(sid)
        assert ac.expire() == []
    assert ac.next_deadline() == clock.now + 60
    clock.advance(60)
    (ended,) = ac.expire()
    assert ended.reason is AdmissionReason.IDLE_TIMEOUT and ended.status == 6
    assert {c.node_id for c in ended.configs} == {"n2", "n0", "n3"}
    assert ac.session(sid).state is SessionState.TERMINATED and len(ac.ledger) == 0
    with pytest.raises(SessionStateError):
        ac.key_request(sid)
    assert not ac.confirm_deletion(sid, "n2")
    assert not ac.confirm_deletion(sid, "n0")
    assert ac.confirm_deletion(sid, "n3")
    assert ac.forget_terminated() == 1
    with pytest.raises(UnknownSessionError):
        ac.session(sid)


def test_peer_that_never_comes(directory):
    ac, clock = make(directory, peer_wait_s=10)
    first = ac.request_config(req(2, 3))
    clock.advance(9.9)
    assert ac.expire() == []
    clock.advance(0.1)
    (ended,) = ac.expire()
    assert ended.reason is AdmissionReason.PEER_TIMEOUT and ended.configs == ()
    assert ended.notify_nodes == ("n2",)
    assert ac.session(first.session_id).state is SessionState.TERMINATED


def test_ttl_expiry(directory):
    ac, clock = make(directory)
    _, _done = open_pair(ac, 2, 3, qos=QoS(max_bps=1000, min_bps=1000, ttl_s=5))
    clock.advance(5)
    (ended,) = ac.expire()
    assert ended.reason is AdmissionReason.TTL_EXPIRED


def test_close_from_either_end_and_not_from_elsewhere(directory):
    ac, _ = make(directory)
    _, done = open_pair(ac, 2, 3)
    with pytest.raises(SessionStateError):
        ac.close(done.session_id, "n4")
    ended = ac.close(done.session_id, "n3")
    assert ended.reason is AdmissionReason.CLOSED and ended.status == 0
    assert len(ended.configs) == 3
    with pytest.raises(SessionStateError):
        ac.close(done.session_id, "n2")
    waiting = ac.request_config(req(1, 4))
    ended = ac.close(waiting.session_id, "n1")
    assert ended.configs == () and ended.notify_nodes == ("n1",)


def test_capacity_reservations_and_lower_rate(directory):
    links = paper_links()
    links.set("n0-n2", skr=25_000)
    ac, _ = make(directory, links)
    _, a = open_pair(ac, 2, 3, qos=QoS(max_bps=20_000, min_bps=1_000))
    assert a.rate_bps == 20_000
    _, b = open_pair(ac, 2, 1, qos=QoS(max_bps=20_000, min_bps=1_000))
    # only 5 kbit/s left on n0-n2: admitted at the lower rate the SLA allows
    assert isinstance(b, Configured) and b.reason is AdmissionReason.ADMITTED_AT_LOWER_RATE
    assert b.rate_bps == 5_000
    assert ac.ledger.reserved_by_link()["n0-n2"] == 25_000
    ac.close(a.session_id)
    assert ac.ledger.reserved_by_link()["n0-n2"] == 5_000


def test_no_lower_rate_when_sla_forbids_or_below_floor(directory):
    links = paper_links()
    links.set("n0-n4", skr=3_000)
    links.set("n4-n5", status=LinkStatus.OFF)
    ac, _ = make(directory, links)
    first = ac.request_config(ConfigRequest("n4", "sae-s", "sae-1", "s", "strict",
                                            QoS(max_bps=10_000)))
    out = ac.request_config(ConfigRequest("n1", "sae-1", "sae-s", "u1", "std",
                                          QoS(max_bps=10_000)))
    assert isinstance(out, Terminated) and out.reason is AdmissionReason.INSUFFICIENT_CAPACITY
    assert out.status == 7 and out.counter_proposal.max_bps == 3_000
    assert set(out.notify_nodes) == {"n4", "n1"} and out.configs == ()
    assert ac.session(first.session_id).state is SessionState.TERMINATED
    # floor: min_bps above what is left
    first = ac.request_config(req(4, 1, qos=QoS(max_bps=10_000, min_bps=5_000)))
    out = ac.request_config(req(1, 4, qos=QoS(max_bps=10_000, min_bps=5_000)))
    assert isinstance(out, Terminated) and out.reason is AdmissionReason.INSUFFICIENT_CAPACITY


def test_no_path(directory):
    links = paper_links()
    links.set("n0-n3", down_reason="fiber cut")
    ac, _ = make(directory, links)
    first = ac.request_config(req(2, 3))
    out = ac.request_config(req(3, 2))
    assert isinstance(out, Terminated) and out.reason is AdmissionReason.NO_PATH
    assert out.status == 4 and set(out.notify_nodes) == {"n2", "n3"}
    assert ac.session(first.session_id).state is SessionState.TERMINATED


def test_multipath_when_one_path_is_too_thin(directory):
    links = Links([link("n1", "n0", 30_000), link("n0", "n2", 30_000),
                   link("n1", "n3", 30_000), link("n3", "n2", 30_000)])
    ac, _ = make(directory, links)
    _, done = open_pair(ac, 1, 2, qos=QoS(max_bps=50_000, min_bps=50_000))
    assert isinstance(done, Configured) and done.route.is_multipath and done.rate_bps == 50_000
    by_node = {c.node_id: c for c in done.configs}
    assert len(by_node["n1"].hops) == 2 and len(by_node["n1"].app.backing_links) == 2
    assert sum(h.bandwidth_bps for h in by_node["n1"].hops) == 50_000
    assert by_node["n0"].role is KmRole.RELAY and len(by_node["n0"].hops) == 1


def test_qos_mismatch_between_peers(directory):
    ac, _ = make(directory)
    ac.request_config(req(2, 3, qos=QoS(max_bps=2_000, min_bps=1_000)))
    out = ac.request_config(req(3, 2, qos=QoS(max_bps=9_000, min_bps=5_000)))
    assert isinstance(out, Terminated) and out.reason is AdmissionReason.QOS_MISMATCH
    assert out.status == 7


def test_reroute_keeps_session_id_and_moves_reservations(directory):
    links = Links([link("a", "b"), link("b", "c"), link("a", "d"), link("d", "e"),
                   link("e", "c")])
    db = directory
    db.add_application("sae-a", "u0", "a")
    db.add_application("sae-c", "u1", "c")
    ac, _ = make(db, links)
    ac.request_config(ConfigRequest("a", "sae-a", "sae-c", "u0", "std", QoS(max_bps=4_000)))
    done = ac.request_config(ConfigRequest("c", "sae-c", "sae-a", "u1", "std",
                                           QoS(max_bps=4_000)))
    assert done.route.legs[0].path.nodes == ("a", "b", "c")
    assert ac.sessions_using(["b-c"]) == {done.session_id}
    links.set("b-c", flag_reason="QBER 0.2")
    out = ac.reroute(done.session_id)
    assert isinstance(out, Rerouted) and out.session_id == done.session_id
    assert out.route.legs[0].path.nodes == ("a", "d", "e", "c")
    assert set(ac.ledger.reserved_by_link()) == {"a-d", "d-e", "e-c"}
    stale_nodes = {c.node_id for c in out.stale_configs}
    assert stale_nodes == {"a", "b", "c"}  # b left the route; a, c drop the old virtual link
    old_vlink = done.configs[0].hops[0].link_id
    assert all(h.link_id == old_vlink for c in out.stale_configs for h in c.hops)
    assert all(h.link_id != old_vlink for c in out.new_configs for h in c.hops)
    links.set("d-e", down_reason="cut")
    out = ac.reroute(done.session_id)
    assert isinstance(out, Terminated) and out.reason is AdmissionReason.LINK_FAILURE
    assert len(ac.ledger) == 0


def test_same_node_session_needs_no_link(directory):
    directory.add_application("sae-2b", "u3", "n2")
    ac, _ = make(directory)
    ac.request_config(ConfigRequest("n2", "sae-2", "sae-2b", "u2", "std", QoS(max_bps=1000)))
    out = ac.request_config(ConfigRequest("n2", "sae-2b", "sae-2", "u3", "std",
                                          QoS(max_bps=1000)))
    assert isinstance(out, Configured) and out.route is None
    (config,) = out.configs
    assert config.node_id == "n2" and config.app.backing_links == ()


def test_fail_releases(directory):
    ac, _ = make(directory)
    _, done = open_pair(ac, 2, 3)
    out = ac.fail(done.session_id, "node n0 refused edit-config")
    assert out.reason is AdmissionReason.CONFIGURATION_FAILED and len(ac.ledger) == 0
    assert out.detail == "node n0 refused edit-config"


def test_session_limit_counts_open_sessions_only(directory):
    ac, clock = make(directory, peer_wait_s=5)
    _, first = open_pair(ac, 2, 3)
    waiting = ac.request_config(req(2, 1))
    assert isinstance(ac.request_config(req(2, 4)), Refused)  # u2 holds 2 (limit 2)
    ac.close(first.session_id)
    assert isinstance(ac.request_config(req(2, 4)), Waiting)  # one freed by the close
    clock.advance(5)
    assert len(ac.expire()) == 2  # both waiting sessions time out ...
    assert isinstance(ac.request_config(req(2, 5)), Waiting)  # ... and free their places
    assert ac.session(waiting.session_id).state is SessionState.TERMINATED
    # the responder's user is counted too: u3 pairs twice, third time refused
    ac2, _ = make(directory)
    open_pair(ac2, 1, 3)
    open_pair(ac2, 4, 3)
    assert isinstance(ac2.request_config(req(3, 5)), Refused)


def test_qos_update_re_admits_at_the_new_rate_or_refuses_keeping_the_session(directory):
    links = paper_links()
    links.set("n0-n3", skr=30_000)
    ac, _ = make(directory, links)
    _, done = open_pair(ac, 2, 3, qos=QoS(max_bps=10_000, min_bps=1_000, priority=3))
    sid = done.session_id
    # above the SLA: refused, nothing changes
    out = ac.update_qos(sid, "n2", QoS(max_bps=90_000))
    assert isinstance(out, Refused) and out.status == 7 and out.counter_proposal.max_bps == 50_000
    # both ends lower their rate: re-admitted at the new rate, same session
    ac.update_qos(sid, "n3", QoS(max_bps=5_000, min_bps=1_000, priority=3))
    assert ac.session(sid).rate_bps == 5_000
    out = ac.update_qos(sid, "n2", QoS(max_bps=4_000, min_bps=1_000, priority=2))
    assert isinstance(out, Rerouted) and out.rate_bps == 4_000 and ac.session(sid).priority == 2
    assert ac.ledger.reserved_by_link() == {"n0-n2": 4_000, "n0-n3": 4_000}
    assert {h.link_id for c in out.stale_configs for h in c.hops} != \
        {h.link_id for c in out.new_configs for h in c.hops}
    # a floor above what the peer asks for: refused as a mismatch
    out = ac.update_qos(sid, "n3", QoS(max_bps=45_000, min_bps=40_000))
    assert isinstance(out, Refused) and out.reason is AdmissionReason.QOS_MISMATCH
    # more than the network can carry with a floor above it: refused, old rate kept
    assert isinstance(ac.update_qos(sid, "n3", QoS(max_bps=45_000, min_bps=1_000)), Rerouted)
    out = ac.update_qos(sid, "n2", QoS(max_bps=45_000, min_bps=40_000))
    assert isinstance(out, Refused) and out.reason is AdmissionReason.INSUFFICIENT_CAPACITY
    assert out.counter_proposal.max_bps == 30_000
    assert ac.session(sid).rate_bps == 4_000
    assert ac.ledger.reserved_by_link() == {"n0-n2": 4_000, "n0-n3": 4_000}
    with pytest.raises(SessionStateError):
        ac.update_qos(sid, "n5", QoS(max_bps=1_000))


def test_etsi014_master_request_stands_for_both_ends(directory):
    """ETSI 014: the slave SAE opens nothing before dec_keys, so the master's first request
    is admitted at once, with the peer's node, user and SLA from the user database."""
    ac, _ = make(directory)
    request = ConfigRequest("n2", "sae-2", "sae-3", "u2", "std",
                            QoS(max_bps=10_000, min_bps=1_000, priority=3), peer_opens=False)
    done = ac.request_config(request)
    assert isinstance(done, Configured)
    view = ac.session(done.session_id)
    assert view.state is SessionState.ACTIVE
    assert view.route.legs[0].path.nodes == ("n2", "n0", "n3")
    by_node = {c.node_id: c for c in done.configs}
    assert by_node["n3"].app.local_sae_id == "sae-3"
    # both users count against their SLA's session limit (2 for "std")
    ac.request_config(ConfigRequest("n3", "sae-3", "sae-1", "u3", "std", peer_opens=False))
    refused = ac.request_config(ConfigRequest("n3", "sae-3", "sae-4", "u3", "std",
                                              peer_opens=False))
    assert isinstance(refused, Refused) and refused.reason is AdmissionReason.SESSION_LIMIT
