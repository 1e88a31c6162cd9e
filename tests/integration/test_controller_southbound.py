"""The controller over real NETCONF: four agents (square a-b-c + a-d-c) on loopback, the
southbound's ncclient sessions, notifications up, edit-configs down, into the agents'
libyang-validated datastores."""

from __future__ import annotations

import time

import pytest

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.node_model import initial_node_config
from qkdn.topology import parse_topology
from sdn_controller.admission_control import AdmissionControl, SessionState
from sdn_controller.controller import Controller
from sdn_controller.routing import GraphRouter
from sdn_controller.southbound import AgentEndpoint, Southbound, SouthboundConfig
from sdn_controller.topology_db import TopologyDb
from sdn_controller.user_db import UserDb

pytestmark = pytest.mark.integration

PASSWORD = "controller-test-pw"
T = "etsi-qkd-node-types:"
NODE = "etsi-qkd-sdn-node:qkd_node"
RAW_TOPOLOGY = {
    "name": "square",
    "nodes": [{"name": n} for n in "abcd"],
    "links": [{"a": "a", "b": "b", "length_km": 10}, {"a": "b", "b": "c", "length_km": 10},
              {"a": "a", "b": "d", "length_km": 30}, {"a": "d", "b": "c", "length_km": 30}],
    "slas": [{"name": "std", "max_bps": 100000, "max_priority": 5, "idle_timeout_s": 60}],
    "users": [{"name": "ua", "sla": "std"}, {"name": "uc", "sla": "std"}],
    "saes": [{"id": "sae-a", "node": "a", "user": "ua"},
             {"id": "sae-c", "node": "c", "user": "uc"}],
}
TOPO = parse_topology(RAW_TOPOLOGY)


def nid(name):
    return TOPO.node(name).qkdn_id


def lid(a, b):
    return next(lk.qkdl_id for lk in TOPO.links if set(lk.ends()) == {a, b})


class Signals:
    def __init__(self):
        self.refusals = []

    def refuse(self, node_id, refusal):
        self.refusals.append((node_id, refusal))


class Network:
    def __init__(self, tmp_path, *, controller=True):
        self.tmp = tmp_path
        self.live = {lk.qkdl_id: {"status": "ACTIVE", "skr": 50_000 if "d" in lk.ends() else 90_000}
                     for lk in TOPO.links}
        self.threads = {}
        self.datastores = {}
        for node in TOPO.nodes:
            self.start_agent(node.name)
        self.southbound = None
        if controller:
            self.start_controller()

    def start_controller(self):
        endpoints = [AgentEndpoint(n.qkdn_id, "127.0.0.1", self.threads[n.name].port, "admin",
                                   PASSWORD, n.name) for n in TOPO.nodes]
        self.southbound = Southbound(endpoints, SouthboundConfig(poll_interval_s=1.0,
                                                                 backoff_max_s=0.5))
        self.users = UserDb.open()
        self.users.load_topology(TOPO)
        self.topology = TopologyDb.open(clock=time.monotonic)
        self.admission = AdmissionControl(self.users, GraphRouter(self.topology.links),
                                          clock=time.monotonic)
        self.signals = Signals()
        self.ctl = Controller(self.users, self.topology, self.admission, self.southbound,
                              self.signals, clock=time.monotonic)
        self.southbound.start(self.ctl.handle_notification,
                              lambda node, reply: self.ctl.ingest_node(reply))

    def state_of(self, name):
        def provider():
            links = [{"qkdl_id": lk.qkdl_id, "qkdl_status": T + self.live[lk.qkdl_id]["status"],
                      "qkdl_performance": {"skr": self.live[lk.qkdl_id]["skr"],
                                           "eskr": self.live[lk.qkdl_id]["skr"]}}
                     for lk in TOPO.links_of(name)]
            return {NODE: {"qkdn_status": T + "OPERATING", "qkd_links": {"qkd_link": links}}}
        return provider

    def start_agent(self, name, port=0):
        if name not in self.datastores:  # a restarted agent keeps its datastore
            ctx = load_context()
            self.datastores[name] = (ctx, Datastore(ctx, initial_node_config(TOPO, name)))
        ctx, store = self.datastores[name]
        config = AgentConfig(port=port, password=PASSWORD, host_key=self.tmp / f"{name}.key")
        thread = AgentThread(QkdAgent(config, store, self.state_of(name), ctx=ctx)).start()
        self.threads[name] = thread

    def notify(self, name, body):
        assert self.threads[name].agent.notify(body) >= 1

    def running(self, name):
        return self.datastores[name][1].running_json()[NODE]

    def apps(self, name):
        return {a["app_id"]: a for a in
                self.running(name).get("qkd_applications", {}).get("qkd_app", [])}

    def virtual_links(self, name):
        return {lk["qkdl_id"]: lk for lk in self.running(name)["qkd_links"]["qkd_link"]
                if lk.get("qkdl_type") == T + "VIRT"}

    def open(self, src, dst):
        self.notify(src, {"etsi-qkd-sdn-node:sdqkdn_application_new": {"qkd_application": {
            "app_type": T + "CLIENT", "server_app_id": f"sae-{src}",
            "client_app_id": [f"sae-{dst}"], "app_priority": 2, "local_qkdn_id": nid(src),
            "app_qos": {"max_bandwidth": 10_000, "min_bandwidth": 1000},
            "qkdn-key-manager:km_request": {"authenticated_sae_id": f"sae-{src}",
                                            "application_interface": "etsi-004"}}}})

    def close(self):
        if self.southbound is not None:
            self.southbound.stop()
            self.ctl.close()
            self.users.close()
            self.topology.close()
        for thread in self.threads.values():
            thread.stop()


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def net(tmp_path):
    network = Network(tmp_path)
    try:
        assert network.southbound.wait_connected(15), "southbound did not connect"
        wait_for(lambda: len([lk for lk in network.topology.links() if lk.usable]) == 4,
                 what="topology from the agents' get replies")
        yield network
    finally:
        network.close()


def establish(net):
    net.open("a", "c")
    wait_for(lambda: any(s.state is SessionState.ACCEPTED for s in net.admission.sessions()),
             what="first request waiting for its peer")
    started = time.perf_counter()
    net.open("c", "a")
    wait_for(lambda: any(s.state is SessionState.ACTIVE for s in net.admission.sessions()),
             what="session active")
    (session,) = net.admission.sessions()
    sid = session.session_id
    wait_for(lambda: all(sid in net.apps(n) for n in "abc"), what="qkd_app on a, b, c")
    return sid, time.perf_counter() - started


def test_session_configured_on_every_km_of_the_path_and_deleted_on_close(net):
    sid, elapsed = establish(net)
    assert elapsed < 5.0  # a loose bound; bench/controller_bench.py measures it
    assert net.apps("d") == {}
    (vlink,) = net.virtual_links("b").values()
    assert vlink["virt_prev_hop"] == nid("a") and vlink["virt_next_hop"] == [nid("c")]
    km = net.apps("a")[sid]["qkdn-key-manager:km_session"]
    assert km["role"] == "source" and km["token_bucket"]["token_rate"] == 10_000
    assert net.apps("c")[sid]["qkdn-key-manager:km_session"]["role"] == "destination"
    assert net.apps("a")[sid]["server_app_id"] == "sae-a"
    net.notify("c", {"etsi-qkd-sdn-node:sdqkdn_application_disconnected": {
        "qkd_application": {"app_id": sid}}})
    wait_for(lambda: all(net.apps(n) == {} and net.virtual_links(n) == {} for n in "abc"),
             what="deletion on every KM")
    assert net.signals.refusals == []


def test_link_down_reroutes_over_the_other_side(net):
    sid, _ = establish(net)
    net.live[lid("b", "c")]["status"] = "OFF"
    net.notify("b", {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": lid("b", "c"), "reason": "fiber cut"}}})
    wait_for(lambda: sid in net.apps("d") and net.apps("b") == {}, what="reroute via d")
    (vlink,) = net.virtual_links("d").values()
    assert vlink["virt_prev_hop"] == nid("a") and vlink["virt_next_hop"] == [nid("c")]
    assert len(net.virtual_links("a")) == 1 and net.virtual_links("b") == {}
    assert net.admission.session(sid).state is SessionState.ACTIVE


def test_unknown_application_refused_without_touching_any_node(net):
    net.notify("a", {"etsi-qkd-sdn-node:sdqkdn_application_new": {"qkd_application": {
        "app_type": T + "CLIENT", "server_app_id": "sae-mallory", "client_app_id": ["sae-c"],
        "local_qkdn_id": nid("a")}}})
    wait_for(lambda: net.signals.refusals, what="refusal")
    (node, refusal), = net.signals.refusals
    assert node == nid("a") and refusal.access_denied and refusal.status == 4
    assert all(net.apps(n) == {} for n in "abcd")


def test_reconnects_after_an_agent_restart(net):
    session = net.southbound[nid("a")]
    port = net.threads["a"].port
    net.threads["a"].stop()
    wait_for(lambda: not session.connected, what="disconnect noticed")
    net.start_agent("a", port=port)
    wait_for(lambda: session.connected and session.connects == 2, timeout=15,
             what="reconnect")
    establish(net)


def test_controller_process_writes_sessions_and_topology_for_the_cli(tmp_path, capsys):
    import json
    import threading

    import yaml

    from qkdn.cli import main
    from sdn_controller.daemon import ControllerProcess, resolve_settings

    agents = Network(tmp_path, controller=False)
    state = tmp_path / "state"
    state.mkdir()
    (state / "topology.yaml").write_text(yaml.safe_dump(RAW_TOPOLOGY))
    (state / "endpoints.json").write_text(json.dumps({"topology": "square", "nodes": {
        n.name: {"qkdn_id": n.qkdn_id, "netconf": {
            "host": "127.0.0.1", "port": agents.threads[n.name].port, "username": "admin",
            "password": PASSWORD}} for n in TOPO.nodes}}))
    process = ControllerProcess(resolve_settings(state, poll_interval_s=0.5, tick_s=0.1,
                                                 environ={}))
    stop = threading.Event()
    runner = threading.Thread(target=process.run, args=(stop,), daemon=True)
    runner.start()
    try:
        wait_for(lambda: (state / "controller" / "ready.json").exists(), timeout=15,
                 what="controller ready")
        wait_for(lambda: len([lk for lk in process.topology.links() if lk.usable]) == 4,
                 what="topology")
        agents.admission = process.admission
        establish(agents)
        wait_for(lambda: any(s["state"] == "active" for s in json.loads(
            (state / "controller" / "sessions.json").read_text())["sessions"]),
            what="sessions.json")
        assert main(["sessions", "--state-dir", str(state)]) == 0
        out = capsys.readouterr().out
        assert "active" in out and "sae-a@a" in out and "a-b-c" in out
        assert main(["topology", "--state-dir", str(state)]) == 0
        out = capsys.readouterr().out
        assert "a-b" in out and "usable" in out and "ACTIVE" in out
    finally:
        stop.set()
        runner.join(timeout=20)
        agents.close()
    assert not (state / "controller" / "ready.json").exists()


def test_orphan_configuration_left_on_an_agent_is_removed(net):
    from ncclient import manager

    orphan = "0bad0bad-0000-4000-8000-000000000001"
    config = f"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
      <qkd_node xmlns="urn:etsi:qkd:yang:etsi-qkd-node"><qkdn_id>{nid("b")}</qkdn_id>
        <qkd_applications><qkd_app><app_id>{orphan}</app_id>
          <km_session xmlns="urn:qkdn:yang:qkdn-key-manager"><role>relay</role></km_session>
        </qkd_app></qkd_applications></qkd_node></config>"""
    with manager.connect(host="127.0.0.1", port=net.threads["b"].port, username="admin",
                         password=PASSWORD, hostkey_verify=False, look_for_keys=False,
                         allow_agent=False, timeout=10) as m:
        m.edit_config(target="running", config=config)
    assert orphan in net.apps("b")
    wait_for(lambda: orphan not in net.apps("b"), timeout=5, what="orphan removed")
