"""`qkdn fault` on a running network: each fault shows in the agents' state and
notifications within about a second (separate node processes, real NETCONF)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from qkdn.bringup import bring_down, bring_up, network_status
from qkdn.namespaces import ETSI_NODE_NS
from qkdn.netconf_client import connect
from qkdn.state_files import StateDir

pytestmark = pytest.mark.integration

LINE = {
    "name": "line3",
    "nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
    "links": [{"a": "a", "b": "b", "length_km": 10}, {"a": "b", "b": "c", "length_km": 20}],
}
NS = {"n": ETSI_NODE_NS}


@pytest.fixture(scope="module")
def line_network(tmp_path_factory):
    root = tmp_path_factory.mktemp("line3")
    topology = root / "line3.yaml"
    topology.write_text(yaml.safe_dump(LINE))
    state = StateDir(root / "state")
    endpoints = bring_up(topology, state, timeout=90)
    try:
        yield state, endpoints
    finally:
        bring_down(state)


def _fault(state: StateDir, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "qkdn.cli", "fault", "--state-dir",
                           str(state.root), *args], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr


def _link(session, peer_id: str):
    data = session.get(filter=("subtree", f'<qkd_node xmlns="{ETSI_NODE_NS}"/>')).data_ele
    for link in data.iterfind(".//n:qkd_link", NS):
        if link.findtext("n:qkdl_remote/n:qkdn_id", namespaces=NS) == peer_id:
            return link
    raise AssertionError("link not found")


def _status(link) -> str:
    return link.findtext("n:qkdl_status", namespaces=NS).split(":")[-1]


def _wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_link_down_and_up_reach_state_and_notifications(line_network):
    state, endpoints = line_network
    nc = endpoints["nodes"]["a"]["netconf"]
    peer = endpoints["nodes"]["b"]["qkdn_id"]
    with connect(nc["host"], nc["port"], nc["username"], nc["password"]) as session:
        assert _wait_for(lambda: _status(_link(session, peer)) == "ACTIVE", 20)
        session.create_subscription()
        _fault(state, "link-down", "a", "b")
        note = session.take_notification(block=True, timeout=10)
        while note is not None and "sdqkdn_link_down" not in note.notification_xml:
            note = session.take_notification(block=True, timeout=10)
        assert note is not None, "no sdqkdn_link_down"
        assert _wait_for(lambda: _status(_link(session, peer)) != "ACTIVE", 5)
        link = _link(session, peer)
        assert link.findtext("n:qkdl_performance/n:skr", namespaces=NS) == "0"

        _fault(state, "link-up", "a", "b")
        assert _wait_for(lambda: _status(_link(session, peer)) == "ACTIVE", 10)


def test_eavesdropper_raises_the_qber(line_network):
    state, endpoints = line_network
    nc = endpoints["nodes"]["b"]["netconf"]
    peer = endpoints["nodes"]["c"]["qkdn_id"]

    def qber(session) -> float:
        link = _link(session, peer)
        return float(link.findtext("n:qkdl_performance/n:phys_perf/n:value", namespaces=NS))

    with connect(nc["host"], nc["port"], nc["username"], nc["password"]) as session:
        baseline = _wait_for(lambda: qber(session) or None, 20)
        _fault(state, "eavesdrop", "b", "c", "0.2")
        # intercept-resend on 20 % of the pulses adds about 0.2/4 = 5 % QBER
        assert _wait_for(lambda: qber(session) > baseline + 0.03, 10), qber(session)
        _fault(state, "clear", "b", "c")
        assert _wait_for(lambda: qber(session) < baseline + 0.01, 10)


def test_node_kill_and_restart(line_network):
    state, endpoints = line_network
    nc = endpoints["nodes"]["a"]["netconf"]
    peer = endpoints["nodes"]["b"]["qkdn_id"]
    _fault(state, "node-kill", "b")
    row = _wait_for(lambda: next(r for r in network_status(state)["processes"]
                                 if r["name"] == "b" and not r["alive"]), 10)
    assert row
    with connect(nc["host"], nc["port"], nc["username"], nc["password"]) as session:
        # a's end of the link has no partner: no key is generated
        assert _wait_for(lambda: _status(_link(session, peer)) == "PASSIVE", 5)
    _fault(state, "node-restart", "b")
    assert _wait_for(lambda: next(r for r in network_status(state)["processes"]
                                  if r["name"] == "b")["alive"], 20)
    with connect(nc["host"], nc["port"], nc["username"], nc["password"]) as session:
        assert _wait_for(lambda: _status(_link(session, peer)) == "ACTIVE", 30)
