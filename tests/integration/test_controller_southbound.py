"""The controller over real NETCONF: four agents (square a-b-c + a-d-c) on loopback, the
southbound's ncclient sessions, notifications up, edit-configs down, into the agents'
libyang-validated datastores."""

from __future__ import annotations

import pytest

from sdn_controller.admission_control import SessionState

from .southbound_transports import TRANSPORTS
from .square_network import RAW_TOPOLOGY, TOPO, SquareNetwork, T, connected, lid, nid, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "controller-test-pw"


@pytest.fixture(params=TRANSPORTS)
def net(tmp_path, request):
    with connected(SquareNetwork(tmp_path, PASSWORD, transport=request.param)) as network:
        yield network


def test_session_configured_on_every_km_of_the_path_and_deleted_on_close(net):
    sid = net.establish()
    assert net.setup_s < 5.0  # a loose bound; bench/controller_bench.py measures it
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
    sid = net.establish()
    net.live[lid("b", "c")]["status"] = "OFF"
    net.notify("b", {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {
        "qkdl_id": lid("b", "c"), "reason": "fiber cut"}}})
    # the old path's removals go to a and b in parallel: wait for both, not only b's
    wait_for(lambda: sid in net.apps("d") and net.apps("b") == {}
             and len(net.virtual_links("a")) == 1, what="reroute via d")
    (vlink,) = net.virtual_links("d").values()
    assert vlink["virt_prev_hop"] == nid("a") and vlink["virt_next_hop"] == [nid("c")]
    (a_vlink,) = net.virtual_links("a").values()
    assert a_vlink["virt_next_hop"] == [nid("d")] and net.virtual_links("b") == {}
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
    net.establish()


def test_controller_process_writes_sessions_and_topology_for_the_cli(tmp_path, capsys):
    import json
    import threading

    import yaml

    from qkdn.cli import main
    from sdn_controller.daemon import ControllerProcess, resolve_settings

    agents = SquareNetwork(tmp_path, PASSWORD, controller=False)
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
        agents.establish()
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
