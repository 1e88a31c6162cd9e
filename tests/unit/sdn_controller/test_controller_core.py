"""The whole control loop without sockets: notifications in, edit-configs out (in-memory
nodes), on the paper's six-node network."""

from pathlib import Path

import pytest

from qkdn.node_model import initial_node_config
from qkdn.topology import load_topology
from sdn_controller.admission_control import AdmissionControl, AdmissionPolicy, SessionState
from sdn_controller.controller import Controller, EventKind
from sdn_controller.monitoring import MonitoringThresholds
from sdn_controller.routing import GraphRouter
from sdn_controller.topology_db import TopologyDb
from sdn_controller.user_db import UserDb

REPO = Path(__file__).resolve().parents[3]
TOPO = load_topology(REPO / "topologies" / "paper.yaml")
T = "etsi-qkd-node-types:"
E = "urn:etsi:qkd:yang:etsi-qkd-node"
ETSI = "etsi-qkd-sdn-node"
KM = "qkdn-key-manager"


def nid(name):
    return TOPO.node(name).qkdn_id


def lid(a, b):
    return next(lk.qkdl_id for lk in TOPO.links if set(lk.ends()) == {a, b})


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Signals:
    def __init__(self):
        self.refusals = []

    def refuse(self, node_id, refusal):
        self.refusals.append((node_id, refusal))


def node_state(name, skr=200_000):
    cfg = initial_node_config(TOPO, name)
    body = cfg[f"{ETSI}:qkd_node"]
    for link in body.get("qkd_links", {}).get("qkd_link", []):
        link["qkdl_status"] = T + "ACTIVE"
        link["qkdl_performance"] = {"skr": skr, "eskr": skr, "phys_perf": [
            {"perf_type": T + "QBER", "value": "0.02"}]}
    return cfg


class Net:
    def __init__(self, memory_node, **policy):
        self.clock = Clock()
        self.users = UserDb.open()
        self.users.load_topology(TOPO)
        self.topology = TopologyDb.open(clock=self.clock)
        for node in TOPO.nodes:
            self.topology.name_node(node.qkdn_id, node.name)
        self.nodes = {n.qkdn_id: memory_node(n.qkdn_id) for n in TOPO.nodes}
        self.signals = Signals()
        self.admission = AdmissionControl(self.users, GraphRouter(self.topology.links),
                                          clock=self.clock, policy=AdmissionPolicy(**policy))
        self.ctl = Controller(self.users, self.topology, self.admission, self.nodes,
                              self.signals, clock=self.clock,
                              thresholds=MonitoringThresholds(qber_alarm=0.11))
        for node in TOPO.nodes:
            self.ctl.ingest_node(node_state(node.name))

    def open(self, src, dst, *, sae=None, peer=None, max_bps=10_000, priority=1, ksid=None,
             request_id=None, interface="etsi-004"):
        sae = sae or f"sae-{src}"
        peer = peer or f"sae-{dst}"
        app = {"app_type": T + "CLIENT", "server_app_id": sae, "client_app_id": [peer],
               "app_priority": priority, "local_qkdn_id": nid(src),
               "app_qos": {"max_bandwidth": max_bps, "min_bandwidth": 1024},
               f"{KM}:km_request": {"authenticated_sae_id": sae,
                                    "application_interface": interface}}
        if ksid:
            app[f"{KM}:km_request"]["key_stream_id"] = ksid
        if request_id:
            app[f"{KM}:km_request"]["request_id"] = request_id
        self.ctl.handle_notification(nid(src), {f"{ETSI}:sdqkdn_application_new":
                                                {"qkd_application": app}})

    def pair(self, a, b, **kw):
        self.open(a, b, **kw)
        self.open(b, a, **kw)
        (view,) = [s for s in self.admission.sessions(include_terminated=True)
                   if {s.initiator.sae_id, s.peer_sae_id} == {f"sae-{a}", f"sae-{b}"}]
        return view

    def configured(self):
        return {n: node for n, node in self.nodes.items() if node.entries}

    def kinds(self):
        return [e.kind for e in self.ctl.events]


@pytest.fixture
def net(memory_node):
    n = Net(memory_node)
    yield n
    n.users.close()
    n.topology.close()


def text(element, tag):
    return [x.text for x in element.iter(f"{{{E}}}{tag}")]


def test_two_hop_session_through_the_hub_and_nobody_knows_the_path(net):
    view = net.pair("2", "3")
    assert view.state is SessionState.ACTIVE
    assert set(net.configured()) == {nid("2"), nid("0"), nid("3")}
    hub = net.nodes[nid("0")]
    (vlink,) = hub.links().values()
    assert text(vlink, "virt_prev_hop") == [nid("2")] and text(vlink, "virt_next_hop") == [nid("3")]
    src_link = next(iter(net.nodes[nid("2")].links().values()))
    assert text(src_link, "virt_next_hop") == [nid("0")] and text(src_link, "virt_prev_hop") == []
    dst_link = next(iter(net.nodes[nid("3")].links().values()))
    assert text(dst_link, "virt_prev_hop") == [nid("0")] and text(dst_link, "virt_next_hop") == []
    (app,) = net.nodes[nid("2")].apps().values()
    assert text(app, "app_id") == [view.session_id]
    assert EventKind.SESSION_ACTIVE in net.kinds() and net.signals.refusals == []


@pytest.mark.parametrize("a,b", [("0", "1"), ("4", "5")])
def test_adjacent_pairs_go_direct(net, a, b):
    net.pair(a, b)
    assert set(net.configured()) == {nid(a), nid(b)}
    for n in (a, b):
        node = net.nodes[nid(n)]
        assert node.links() == {}
        (app,) = node.apps().values()
        assert text(app, "backing_qkdl_id") == [lid(a, b)]


def test_unknown_user_refused_with_access_denied(net):
    net.open("2", "3", sae="sae-mallory")
    (node, refusal), = net.signals.refusals
    assert node == nid("2") and refusal.access_denied and refusal.status == 4
    assert refusal.reason == "unknown-application" and net.configured() == {}
    assert net.admission.sessions() == []


def test_sae_on_the_wrong_node_refused(net):
    net.open("2", "3", sae="sae-4")
    (_, refusal), = net.signals.refusals
    assert refusal.reason == "wrong-node"


def test_qos_above_sla_refused_with_counter_proposal(net):
    net.open("2", "3", max_bps=5_000_000)  # user-2 is 'standard': 1 Mbit/s
    (_, refusal), = net.signals.refusals
    assert refusal.status == 7 and not refusal.access_denied
    assert refusal.counter_proposal.max_bps == 1_000_000


def test_idle_sessions_expire_and_every_km_drops_them(net):
    view = net.pair("2", "3")
    net.clock.now += 59
    net.ctl.handle_notification(nid("2"), {f"{KM}:km_key_request": {
        "app_id": view.session_id, "number_of_keys": 1, "bits": 256, "outcome": "delivered"}})
    net.clock.now += 59
    net.ctl.tick()
    assert net.admission.session(view.session_id).state is SessionState.ACTIVE
    net.clock.now += 61
    net.ctl.tick()
    assert net.configured() == {}
    assert EventKind.SESSION_TERMINATED in net.kinds()
    assert net.admission.sessions(include_terminated=True) == []  # all deletions confirmed


def test_close_from_the_application(net):
    view = net.pair("2", "3")
    net.ctl.handle_notification(nid("3"), f"""
      <notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">
        <eventTime>2026-11-27T03:00:00Z</eventTime>
        <sdqkdn_application_disconnected xmlns="{E}">
          <qkd_application><app_id>{view.session_id}</app_id></qkd_application>
        </sdqkdn_application_disconnected></notification>""")
    assert net.configured() == {}
    assert net.admission.session(view.session_id).state is SessionState.TERMINATED


def test_km_reports_its_own_termination(net):
    view = net.pair("4", "5")
    net.ctl.handle_notification(nid("4"), {f"{KM}:km_session_state_change": {
        "app_id": view.session_id, "state": "terminated", "reason": "idle timeout"}})
    assert net.configured() == {}


def test_cut_link_reroutes_active_session_keeping_its_id(net):
    view = net.pair("4", "5")
    assert set(net.configured()) == {nid("4"), nid("5")}
    net.ctl.handle_notification(nid("4"), {f"{ETSI}:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": lid("4", "5"), "reason": "fiber cut"}}})
    moved = net.admission.session(view.session_id)
    assert moved.state is SessionState.ACTIVE and moved.session_id == view.session_id
    assert moved.route.legs[0].path.nodes == (nid("4"), nid("0"), nid("5"))
    assert set(net.configured()) == {nid("4"), nid("0"), nid("5")}
    (vlink,) = net.nodes[nid("0")].links().values()
    assert text(vlink, "virt_prev_hop") == [nid("4")]
    kinds = net.kinds()
    assert EventKind.LINK_ALARM in kinds and EventKind.SESSION_REROUTED in kinds
    assert net.signals.refusals == []


def test_high_qber_with_no_alternative_terminates_with_status(net):
    view = net.pair("2", "3")
    net.ctl.handle_notification(nid("0"), {f"{ETSI}:sdqkdn_link_perf_update": {"qkd_link": {
        "qkdl_id": lid("0", "3"), "performance": {"skr": 200_000, "phys_perf": [
            {"perf_type": T + "QBER", "value": "0.18"}]}}}})
    assert net.topology.link(lid("0", "3")).flag_reason.startswith("QBER")
    ended = net.admission.session(view.session_id)
    assert ended.state is SessionState.TERMINATED and ended.reason.value == "link-failure"
    assert net.configured() == {}
    alarms = [e.alarm for e in net.ctl.events if e.kind is EventKind.LINK_ALARM]
    assert alarms[0].kind.value == "qber-high" and alarms[0].severity.value == "MAJOR"


def test_failed_push_refuses_both_ends_and_leaves_nothing(net):
    net.nodes[nid("0")].fail_apply = True
    view = net.pair("2", "3")
    assert view.state is SessionState.TERMINATED
    assert net.configured() == {}
    assert {n for n, _ in net.signals.refusals} == {nid("2"), nid("3")}
    assert all(r.status == 4 for _, r in net.signals.refusals)
    assert net.admission.ledger.reserved_by_link() == {}


def test_peer_never_comes(memory_node):
    net = Net(memory_node, peer_wait_s=5)
    net.open("2", "3")
    net.clock.now += 5
    net.ctl.tick()
    (node, refusal), = net.signals.refusals
    assert node == nid("2") and refusal.status == 6 and refusal.reason == "peer-timeout"


def test_qos_update_moves_the_session_to_new_virtual_links(net):
    view = net.pair("2", "3")
    old_links = set(net.nodes[nid("0")].links())
    for node in ("2", "3"):
        net.ctl.handle_notification(nid(node), {f"{ETSI}:sdqkdn_application_qos_update": {
            "qkd_application": {"app_id": view.session_id, "app_priority": 1,
                                "app_qos": {"max_bandwidth": 2_000, "min_bandwidth": 1024}}}})
    assert net.admission.session(view.session_id).rate_bps == 2_000
    (vlink,) = net.nodes[nid("0")].links().values()
    assert text(vlink, "virt_bandwidth") == ["2000"]
    assert not (set(net.nodes[nid("0")].links()) & old_links)
    (app,) = net.nodes[nid("2")].apps().values()
    assert text(app, "max_bandwidth") == ["2000"]
    net.ctl.handle_notification(nid("2"), {f"{ETSI}:sdqkdn_application_qos_update": {
        "qkd_application": {"app_id": view.session_id, "app_qos": {"max_bandwidth": 10**7}}}})
    (node, refusal), = net.signals.refusals
    assert node == nid("2") and refusal.status == 7 and refusal.counter_proposal.max_bps == 10**6


def test_orphan_session_configuration_is_removed_at_the_next_get(net):
    from sdn_controller.config_payloads import session_config_payload
    live = net.pair("2", "3")
    orphan_id = "0bad0bad-0000-4000-8000-000000000001"
    # what a previous controller run left on node 0: a session it no longer knows
    (relay_config,) = [c for c in live.configs if c.node_id == nid("0")]
    from dataclasses import replace
    hop = replace(relay_config.hops[0], link_id="0bad0bad-0000-4000-8000-0000000000ff")
    net.nodes[nid("0")].edit_config(session_config_payload(
        replace(relay_config, session_id=orphan_id, hops=(hop,))))
    assert orphan_id in net.nodes[nid("0")].apps()
    reply = node_state("0")
    body = reply[f"{ETSI}:qkd_node"]
    body["qkd_applications"] = {"qkd_app": [
        {"app_id": sid, "app_type": T + "CLIENT", f"{KM}:km_session": {"role": "relay"}}
        for sid in (live.session_id, orphan_id)] + [
        {"app_id": "0ab0ab00-0000-4000-8000-000000000002", "app_type": T + "CLIENT"}]}
    body["qkd_links"]["qkd_link"].append({
        "qkdl_id": hop.link_id, "qkdl_type": T + "VIRT", "qkdl_applications": [orphan_id]})
    net.ctl.ingest_node(reply)
    assert set(net.nodes[nid("0")].apps()) == {live.session_id}
    assert hop.link_id not in net.nodes[nid("0")].links()
    assert len(net.nodes[nid("0")].links()) == 1  # the live session's virtual link stays
    assert EventKind.ORPHANS_REMOVED in net.kinds()


def test_terminated_session_left_by_a_failed_deletion_is_removed_at_the_next_get(net):
    """A session ends while one KM cannot be reached: its deletion there fails, the session
    stays terminated with that deletion pending. The node's next get shows the leftover
    configuration: it is removed as an orphan, the deletion counts as done, and the session is
    forgotten (before, a terminated session counted as known and its path stayed half
    configured: a 100-node run's master KM answered 503 for minutes)."""
    view = net.pair("2", "3")
    relay = net.nodes[nid("0")]
    assert view.session_id in relay.apps()
    relay.fail_apply = True
    net.ctl.close_session(view.session_id)
    relay.fail_apply = False
    assert view.session_id in relay.apps()                  # the failed deletion left it
    net.ctl.tick()
    assert net.admission.session(view.session_id).state is SessionState.TERMINATED
    reply = node_state("0")
    reply[f"{ETSI}:qkd_node"]["qkd_applications"] = {"qkd_app": [
        {"app_id": view.session_id, "app_type": T + "CLIENT",
         f"{KM}:km_session": {"role": "relay"}}]}
    net.ctl.ingest_node(reply)
    assert view.session_id not in relay.apps()
    assert EventKind.ORPHANS_REMOVED in net.kinds()
    net.ctl.tick()
    assert view.session_id not in net.admission.session_ids()


def test_all_sessions_on_a_cut_link_are_rerouted(net):
    for _ in range(3):
        net.open("4", "5")
        net.open("5", "4")
    sessions = [s.session_id for s in net.admission.sessions()]
    assert len(sessions) == 3
    calls = {n: len(node.calls) for n, node in net.nodes.items()}
    net.ctl.handle_notification(nid("5"), {f"{ETSI}:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": lid("4", "5"), "reason": "fiber cut"}}})
    # moved together: one edit-config per node for the three sessions
    assert len(net.nodes[nid("0")].calls) - calls[nid("0")] == 1
    assert len(net.nodes[nid("4")].calls) - calls[nid("4")] == 1
    for sid in sessions:
        moved = net.admission.session(sid)
        assert moved.state is SessionState.ACTIVE
        assert moved.route.legs[0].path.nodes == (nid("4"), nid("0"), nid("5"))
    assert set(net.nodes[nid("0")].apps()) == set(sessions)
    assert len(net.nodes[nid("0")].links()) == 3 and len(net.nodes[nid("4")].links()) == 3
    assert [e.kind for e in net.ctl.events].count(EventKind.SESSION_REROUTED) == 3


REQUEST = "0e0e0e0e-0000-4000-8000-00000000000{}"


def test_refusals_name_the_request_the_km_reported(memory_node):
    net = Net(memory_node, peer_wait_s=5)
    net.open("2", "3", sae="sae-mallory", request_id=REQUEST.format(1))   # access denied
    net.open("2", "3", max_bps=5_000_000, request_id=REQUEST.format(2))   # QoS above SLA
    net.open("4", "1", request_id=REQUEST.format(3))                      # peer never comes
    net.clock.now += 5
    net.ctl.tick()
    ids = [(r.reason, r.request_id) for _, r in net.signals.refusals]
    assert ids == [("unknown-application", REQUEST.format(1)),
                   ("qos-above-sla", REQUEST.format(2)), ("peer-timeout", REQUEST.format(3))]


def test_no_path_refuses_both_waiting_ends_by_their_request_ids(net):
    for a, b in (("0", "1"),):
        net.ctl.handle_notification(nid(a), {f"{ETSI}:sdqkdn_link_down": {"qkd_link": {
            "qkdl_id": lid(a, b), "reason": "fiber cut"}}})
    net.open("2", "1", request_id=REQUEST.format(4))
    net.open("1", "2", request_id=REQUEST.format(5))
    refused = {node: r for node, r in net.signals.refusals}
    assert refused[nid("2")].request_id == REQUEST.format(4)
    assert refused[nid("1")].request_id == REQUEST.format(5)
    assert {r.status for r in refused.values()} == {4}


def test_refusal_entries_past_their_retention_are_removed_at_the_next_get(net):
    from sdn_controller.config_payloads import refusal_payload
    from sdn_controller.refusal_channel import SessionRefusal, date_and_time

    for i, age in ((6, 40), (7, 5)):
        net.nodes[nid("0")].edit_config(refusal_payload(nid("0"), SessionRefusal(
            "sae-0", "sae-1", None, 4, "user-revoked", request_id=REQUEST.format(i)),
            refused_at=date_and_time(net.clock.now - age)))
    reply = node_state("0")
    reply[f"{ETSI}:qkd_node"][f"{KM}:km_refusals"] = {"refusal": [
        {"request_id": REQUEST.format(i), "sae_id": "sae-0", "etsi004_status": 4,
         "reason": "user-revoked", "refused_at": date_and_time(net.clock.now - age)}
        for i, age in ((6, 40), (7, 5))]}
    net.ctl.ingest_node(reply)
    assert set(net.nodes[nid("0")].refusals()) == {REQUEST.format(7)}


def test_first_get_of_every_node_reconciles_it(net):
    assert net.ctl.reconciled == {n.qkdn_id for n in TOPO.nodes}
    assert net.kinds().count(EventKind.RECONCILED) == len(TOPO.nodes)


def test_a_repeated_014_request_gets_the_same_session_pushed_again(net):
    net.open("2", "3", interface="etsi-014")
    (view,) = net.admission.sessions()
    pushes = len(net.nodes[nid("0")].calls)
    net.open("2", "3", interface="etsi-014")   # the KM asks again (its wait ran out)
    assert [v.session_id for v in net.admission.sessions()] == [view.session_id]
    assert len(net.nodes[nid("0")].calls) > pushes
    assert set(net.nodes[nid("2")].apps()) == {view.session_id}


def test_sessions_moved_together_fall_back_one_by_one_when_the_batch_fails(net):
    for _ in range(2):
        net.open("4", "5")
        net.open("5", "4")
    sessions = [s.session_id for s in net.admission.sessions()]
    relay = net.nodes[nid("0")]
    original = relay.edit_config
    failed = []

    def fail_first_batch(config):
        if not failed and len(list(config.iter(f"{{{E}}}qkd_app"))) > 1:
            failed.append(True)
            raise RuntimeError("rpc-error: resource-denied")
        original(config)

    relay.edit_config = fail_first_batch
    net.ctl.handle_notification(nid("5"), {f"{ETSI}:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": lid("4", "5"), "reason": "fiber cut"}}})
    assert failed
    for sid in sessions:
        assert net.admission.session(sid).route.legs[0].path.nodes == (nid("4"), nid("0"),
                                                                        nid("5"))
    assert set(relay.apps()) == set(sessions)
    assert [e.kind for e in net.ctl.events].count(EventKind.SESSION_REROUTED) == 2


def test_hybrid_session_of_users_4_and_5_survives_losing_every_path(net):
    """Paper network: users 4 and 5 have a hybrid SLA (ADR 0009). Routing keeps preferring
    QKD paths; with none left the session stays, and the KMs' mode changes become events."""
    view = net.pair("4", "5")
    assert all(c.fallback_policy == "hybrid" for c in view.configs)
    for a, b in (("4", "5"), ("0", "4")):
        net.ctl.handle_notification(nid("4"), {f"{ETSI}:sdqkdn_link_down": {"qkd_link": {
            "qkdl_id": lid(a, b), "reason": "fiber cut"}}})
    kept = net.admission.session(view.session_id)
    assert kept.state is SessionState.ACTIVE
    assert kept.route.legs[0].path.nodes == (nid("4"), nid("0"), nid("5"))   # last QKD route
    for mode, reason in (("hybrid", "link down"), ("qkd", "QKD key available")):
        net.ctl.handle_notification(nid("4"), {f"{KM}:km_key_mode_change": {
            "app_id": view.session_id, "mode": mode,
            "previous_mode": "qkd" if mode == "hybrid" else "hybrid", "reason": reason}})
    net.ctl.handle_notification(nid("4"), {f"{KM}:km_key_request": {
        "app_id": view.session_id, "number_of_keys": 3, "bits": "768", "outcome": "delivered",
        "delivered": {"qkd_keys": "1", "qkd_bits": "256", "hybrid_keys": "2",
                      "hybrid_bits": "512"}}})
    modes = [e.detail for e in net.ctl.events if e.kind is EventKind.SESSION_KEY_MODE]
    assert modes == ["qkd -> hybrid: link down", "hybrid -> qkd: QKD key available"]
    view = net.admission.session(view.session_id)
    assert view.delivered == {"qkd": (1, 256), "hybrid": (2, 512)} and view.key_mode == "qkd"


def test_qkd_only_session_losing_every_path_is_terminated(net):
    view = net.pair("2", "3")
    net.ctl.handle_notification(nid("0"), {f"{ETSI}:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": lid("0", "3"), "reason": "fiber cut"}}})
    assert net.admission.session(view.session_id).state is SessionState.TERMINATED
