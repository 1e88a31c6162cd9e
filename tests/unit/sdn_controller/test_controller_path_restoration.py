"""Path-restoration policy in the controller: AUTOMATIC sessions are rerouted when a link of
their path fails (after the hold-off time, if still broken), MANUAL ones wait for the
operator (restore_session / close_session). In-memory nodes, no sockets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qkdn.node_model import initial_node_config
from qkdn.topology import load_topology
from sdn_controller.admission_control import AdmissionControl, SessionState
from sdn_controller.controller import Controller
from sdn_controller.errors import NoPathError, UnknownSessionError
from sdn_controller.path_restoration import PathRestoration, RestorationType
from sdn_controller.routing import GraphRouter
from sdn_controller.topology_db import TopologyDb
from sdn_controller.user_db import UserDb

REPO = Path(__file__).resolve().parents[3]
TOPO = load_topology(REPO / "topologies" / "paper.yaml")
T = "etsi-qkd-node-types:"
ETSI = "etsi-qkd-sdn-node"
KM = "qkdn-key-manager"


def nid(name):
    return TOPO.node(name).qkdn_id


def lid(a, b):
    return next(lk.qkdl_id for lk in TOPO.links if set(lk.ends()) == {a, b})


class Signals:
    def refuse(self, node_id, refusal):
        pass


class Net:
    def __init__(self, memory_node, policy: PathRestoration):
        self.users = UserDb.open()
        self.users.load_topology(TOPO)
        self.topology = TopologyDb.open(clock=time.time)
        self.nodes = {n.qkdn_id: memory_node(n.qkdn_id) for n in TOPO.nodes}
        self.admission = AdmissionControl(self.users, GraphRouter(self.topology.links),
                                          clock=time.monotonic)
        self.ctl = Controller(self.users, self.topology, self.admission, self.nodes,
                              Signals(), clock=time.time,
                              restoration_policy=lambda view: policy)
        for node in TOPO.nodes:
            cfg = initial_node_config(TOPO, node.name)
            for link in cfg[f"{ETSI}:qkd_node"].get("qkd_links", {}).get("qkd_link", []):
                link["qkdl_status"] = T + "ACTIVE"
                link["qkdl_performance"] = {"skr": 200_000, "eskr": 200_000}
            self.ctl.ingest_node(cfg)

    def pair(self, a, b):
        for src, dst in ((a, b), (b, a)):
            app = {"app_type": T + "CLIENT", "server_app_id": f"sae-{src}",
                   "client_app_id": [f"sae-{dst}"], "app_priority": 1,
                   "local_qkdn_id": nid(src),
                   "app_qos": {"max_bandwidth": 10_000, "min_bandwidth": 1024},
                   f"{KM}:km_request": {"authenticated_sae_id": f"sae-{src}",
                                        "application_interface": "etsi-004"}}
            self.ctl.handle_notification(nid(src), {f"{ETSI}:sdqkdn_application_new":
                                                    {"qkd_application": app}})
        (view,) = self.admission.sessions()
        assert view.state is SessionState.ACTIVE
        return view.session_id

    def cut(self, a, b):
        self.ctl.handle_notification(nid(a), {f"{ETSI}:sdqkdn_link_down": {"qkd_link": {
            "qkdl_id": lid(a, b), "reason": "fiber cut"}}})

    def nodes_of(self, sid):
        return self.admission.session(sid).route.legs[0].path.nodes

    def close(self):
        self.ctl.close()
        self.users.close()
        self.topology.close()


@pytest.fixture
def make(memory_node):
    made = []

    def build(kind, hold_off_ms=0):
        net = Net(memory_node, PathRestoration(kind, hold_off_ms))
        made.append(net)
        return net

    yield build
    for net in made:
        net.close()


def test_manual_sessions_wait_for_the_operator(make):
    net = make(RestorationType.MANUAL)
    sid = net.pair("4", "5")
    net.cut("4", "5")
    assert net.nodes_of(sid) == (nid("4"), nid("5"))  # left on the broken path
    view = net.ctl.restore_session(sid)
    assert view.route.legs[0].path.nodes == (nid("4"), nid("0"), nid("5"))
    assert net.nodes[nid("0")].entries  # the relay got its configuration


def test_automatic_sessions_wait_out_the_hold_off_time(make):
    net = make(RestorationType.AUTOMATIC, hold_off_ms=150)
    sid = net.pair("4", "5")
    net.cut("4", "5")
    assert net.nodes_of(sid) == (nid("4"), nid("5"))
    deadline = time.monotonic() + 5
    while net.nodes_of(sid) == (nid("4"), nid("5")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert net.nodes_of(sid) == (nid("4"), nid("0"), nid("5"))


def test_a_link_back_within_the_hold_off_time_needs_no_restoration(make):
    net = make(RestorationType.AUTOMATIC, hold_off_ms=200)
    sid = net.pair("4", "5")
    net.cut("4", "5")
    net.ctl.ingest_node(_active(net, "4"))
    assert net.topology.link(lid("4", "5")).usable
    (timer,) = net.ctl._hold_off_timers
    timer.join(timeout=5)
    assert not timer.is_alive()
    assert net.nodes_of(sid) == (nid("4"), nid("5"))


def _active(net, name):
    cfg = initial_node_config(TOPO, name)
    for link in cfg[f"{ETSI}:qkd_node"].get("qkd_links", {}).get("qkd_link", []):
        link["qkdl_status"] = T + "ACTIVE"
        link["qkdl_performance"] = {"skr": 200_000, "eskr": 200_000}
    return cfg


def test_restore_without_a_path_keeps_the_session_and_close_ends_it(make):
    net = make(RestorationType.MANUAL)
    sid = net.pair("2", "3")  # 2-0-3: 0-3 is the only way to 3
    net.cut("0", "3")
    with pytest.raises(NoPathError):
        net.ctl.restore_session(sid)
    assert net.admission.session(sid).state is SessionState.ACTIVE
    net.ctl.close_session(sid, "operator request")
    ended = net.admission.session(sid)
    assert ended.state is SessionState.TERMINATED and ended.detail == "operator request"
    assert not any(node.entries for node in net.nodes.values())
    with pytest.raises(UnknownSessionError):
        net.ctl.close_session("00000000-0000-4000-8000-00000000dead")
