"""The controller's north-bound NETCONF server against real agents: four agents (square a-b-c
+ a-d-c) on loopback, the controller's southbound, and an orchestrator driving the NBI over
SSH with ncclient (and once with netconf-console2)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lxml import etree
from ncclient.operations import RPCError

from qkdn.namespaces import QKDN_ACC_NS, QKDN_INV_NS, QKDN_TOPO_NS
from qkdn.netconf_client import connect
from sdn_controller.admission_control import SessionState
from sdn_controller.nbi_server import NbiConfig, NbiServer

from .square_network import (
    NODE,
    RAW_TOPOLOGY,
    TOPO,
    SquareNetwork,
    connected,
    lid,
    nid,
    wait_for,
)

pytestmark = pytest.mark.integration

PASSWORD = "nbi-test-agents"
NBI_PASSWORD = "nbi-test-orchestrator"
NS = {"t": QKDN_TOPO_NS, "i": QKDN_INV_NS, "a": QKDN_ACC_NS}


class Network(SquareNetwork):
    """Four real agents, the controller (southbound over NETCONF) and its NBI server."""

    def __init__(self, tmp_path: Path):
        super().__init__(tmp_path, PASSWORD, users_db=tmp_path / "users.sqlite",
                         clock=time.time)

    def controller_built(self):
        self.nbi = NbiServer(self.ctl, TOPO, self.users,
                             NbiConfig(password=NBI_PASSWORD, host_key=self.tmp / "nbi.key",
                                       perf_interval_s=0.2),
                             connected=lambda: {n: s.connected
                                                for n, s in self.southbound.items()})
        self.ctl.restoration_policy = self.nbi.restoration_of  # as the daemon does
        self.nbi.start()

    def orchestrator(self):
        return connect("127.0.0.1", self.nbi.port, "admin", NBI_PASSWORD)

    def close(self):
        if self.southbound is not None:
            self.nbi.stop()
        super().close()


@pytest.fixture
def net(tmp_path):
    with connected(Network(tmp_path)) as network:
        yield network


SVC_FILTER = f"""<qkd_network xmlns="{QKDN_TOPO_NS}"><qkd_links><svc_links/></qkd_links>
</qkd_network>"""


def test_get_serves_nodes_links_and_the_session_as_a_service_link(net):
    sid = net.establish()
    with net.orchestrator() as m:
        data = m.get(filter=("subtree", f'<qkd_network xmlns="{QKDN_TOPO_NS}"/>')).data_ele
        nodes = data.findall(".//t:sdqkd_node", NS)
        assert {n.findtext("t:qkdn_name", namespaces=NS) for n in nodes} == set("abcd")
        assert all(n.findtext("t:qkdn_status", namespaces=NS).endswith("OPERATING")
                   for n in nodes)
        link = data.xpath(".//t:phys_link[t:qkdl_id=$id]", namespaces=NS, id=lid("a", "b"))[0]
        assert link.findtext("t:qkdl_status", namespaces=NS).endswith("ACTIVE")
        perf = link.find("i:phys_link_details/i:qkdl_performance", NS)
        assert perf.findtext("i:skr", namespaces=NS) == "90000"
        assert perf.findtext("i:phys_perf/i:value", namespaces=NS) == "0.02"
        assert perf.findtext("i:svc_link_count", namespaces=NS) == "1"

        one = m.get(filter=("subtree", f"""<qkd_network xmlns="{QKDN_TOPO_NS}"><qkd_links>
            <svc_links><svc_link><qkdl_id>{sid}</qkdl_id></svc_link></svc_links></qkd_links>
            </qkd_network>""")).data_ele
        (svc,) = one.findall(".//t:svc_link", NS)
        hops = [h.findtext("t:qkdn_id", namespaces=NS)
                for h in svc.findall("t:paths/t:path/t:hop", NS)]
        assert hops == [nid("a"), nid("b"), nid("c")]
        details = svc.find("i:svc_link_details", NS)
        assert details.findtext("i:session_state", namespaces=NS) == "active"
        assert details.findtext("i:bandwidth", namespaces=NS) == "10000"
        assert details.findtext("i:local_app/i:sae_id", namespaces=NS) == "sae-a"
        assert details.findtext("i:path_restoration/i:restoration_type",
                                namespaces=NS).endswith("AUTOMATIC")
        # get-config holds configuration only: no service links, no status
        config = m.get_config(source="running").data_ele
        assert config.findall(".//t:svc_link", NS) == []
        assert config.findall(".//t:qkdn_status", NS) == []
        users = m.get(filter=("subtree", f'<qkd_access xmlns="{QKDN_ACC_NS}"><users/></qkd_access>'
                              )).data_ele
        active = {u.findtext("a:name", namespaces=NS): u.findtext("a:active_sessions",
                                                                  namespaces=NS)
                  for u in users.findall(".//a:user", NS)}
        assert active == {"ua": "1", "uc": "1"}


NEW_USERS = f"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <qkd_access xmlns="{QKDN_ACC_NS}" xmlns:qkdn-acc="{QKDN_ACC_NS}">
    <sla_profiles><sla_profile>
      <name>premium</name><max_bandwidth>4000000</max_bandwidth><min_bandwidth>1024</min_bandwidth>
      <max_priority>9</max_priority>
      <path_restoration><restoration_type>qkdn-acc:MANUAL</restoration_type>
        <hold_off_time>2000</hold_off_time></path_restoration>
    </sla_profile></sla_profiles>
    <users><user><name>bank-a</name><sla_profile>premium</sla_profile>
      <allowed_peer>uc</allowed_peer></user></users>
    <applications><application><sae_id>bank-a-vpn</sae_id><user>bank-a</user>
      <qkdn_id>{nid("b")}</qkdn_id></application></applications>
  </qkd_access>
</config>"""


def test_edit_config_writes_users_into_the_user_database(net):
    with net.orchestrator() as m:
        m.edit_config(target="running", config=NEW_USERS)
        assert net.users.sla("premium").max_bps == 4_000_000
        assert net.users.restoration("premium").kind.value == "MANUAL"
        assert net.users.restoration("premium").hold_off_ms == 2000
        assert net.users.user("bank-a").allowed_peers == ("uc",)
        app = net.users.application("bank-a-vpn")
        assert (app.user, app.node_name, app.node_id) == ("bank-a", "b", nid("b"))

        # invalid edits are refused as a whole, the database unchanged
        bad_node = NEW_USERS.replace(nid("b"), "99999999-9999-4999-8999-999999999999")
        bad_node = bad_node.replace("bank-a-vpn", "bank-a-other")
        with pytest.raises(RPCError) as refused:
            m.edit_config(target="running", config=bad_node)
        assert "leafref" in refused.value.message.lower() or \
            "instance" in refused.value.message.lower()
        assert net.users.application("bank-a-other") is None
        bad_rates = NEW_USERS.replace("<min_bandwidth>1024", "<min_bandwidth>9999999")
        with pytest.raises(RPCError) as refused:
            m.edit_config(target="running", config=bad_rates)
        assert "min_bandwidth is above max_bandwidth" in refused.value.message
        assert net.users.sla("premium").min_bps == 1024

        # revoke: the flag lands in the database
        m.edit_config(target="running", config=f"""<config
            xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><qkd_access xmlns="{QKDN_ACC_NS}">
            <users><user><name>bank-a</name><revoked>true</revoked>
            <revoked_reason>contract ended</revoked_reason></user></users></qkd_access>
            </config>""")
        user = net.users.user("bank-a")
        assert user.revoked and user.revoked_reason == "contract ended"

        # a change made in the database (qkdn users ...) is what the next read shows
        net.users.reinstate_user("bank-a")
        data = m.get_config(source="running", filter=("subtree", f"""<qkd_access
            xmlns="{QKDN_ACC_NS}"><users><user><name>bank-a</name></user></users>
            </qkd_access>""")).data_ele
        assert data.findtext(".//a:revoked", namespaces=NS) == "false"


def test_revoking_a_user_closes_its_session(net):
    sid = net.establish()
    with net.orchestrator() as m:
        m.edit_config(target="running", config=f"""<config
            xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><qkd_access xmlns="{QKDN_ACC_NS}">
            <users><user><name>ua</name><revoked>true</revoked></user></users></qkd_access>
            </config>""")
    wait_for(lambda: all(sid not in net.apps(n) for n in "abc"), what="session deleted")
    assert net.users.user("ua").revoked


def test_close_svc_link_closes_a_real_session_and_notifies(net):
    sid = net.establish()
    with net.orchestrator() as m:
        m.create_subscription()
        with pytest.raises(RPCError) as unknown:
            m.dispatch(etree.fromstring(
                f'<close_svc_link xmlns="{QKDN_INV_NS}"><qkdl_id>'
                "55555551-5555-4555-8555-555555555551</qkdl_id></close_svc_link>"))
        assert unknown.value.tag == "invalid-value"
        assert b"<error-app-tag>unknown-svc-link</error-app-tag>" in etree.tostring(
            unknown.value.xml)
        m.dispatch(etree.fromstring(
            f'<close_svc_link xmlns="{QKDN_INV_NS}"><qkdl_id>{sid}</qkdl_id>'
            "<reason>operator request</reason></close_svc_link>"))
        wait_for(lambda: all(sid not in net.apps(n) for n in "abc"), what="deleted on KMs")
        removed = _wait_notification(m, "qkdn_resource_removed")
        assert removed.findtext(".//i:qkdl_id", namespaces=NS) == sid
        assert removed.findtext(".//i:reason", namespaces=NS) == "closed"


def test_link_cut_sends_an_alarm_and_the_new_path(net):
    sid = net.establish()
    with net.orchestrator() as m:
        m.create_subscription()
        net.live[lid("b", "c")]["status"] = "OFF"
        net.notify("b", {"etsi-qkd-sdn-node:sdqkdn_link_down": {"qkd_link": {
            "qkdl_id": lid("b", "c"), "reason": "fiber cut"}}})
        alarm = _wait_notification(m, "alarm")
        assert alarm.findtext(".//i:alarm_type", namespaces=NS).endswith("LINK-DOWN")
        assert alarm.findtext(".//i:severity", namespaces=NS).endswith("MAJOR")
        assert alarm.findtext(".//i:affected_svc_link", namespaces=NS) == sid
        update = _wait_notification(m, "svc_link_path_update")
        hops = [h.findtext("i:qkdn_id", namespaces=NS)
                for h in update.findall(".//i:hop", NS)]
        assert hops == [nid("a"), nid("d"), nid("c")]


def test_restore_svc_link_returns_the_new_path(net):
    sid = net.establish()
    with net.orchestrator() as m:
        reply = m.dispatch(etree.fromstring(
            f'<restore_svc_link xmlns="{QKDN_INV_NS}"><qkdl_id>{sid}</qkdl_id>'
            "</restore_svc_link>"))
        hops = [h.findtext("i:qkdn_id", namespaces=NS)
                for h in etree.fromstring(reply.xml.encode()).findall(".//i:hop", NS)]
        assert hops == [nid("a"), nid("b"), nid("c")]
        # both links out of a flagged (monitoring marks them, nothing rerouted yet): no
        # path, resource-denied, and the session keeps its route
        for pair in (("a", "b"), ("a", "d")):
            net.topology.set_flag(lid(*pair), "test: unusable")
        with pytest.raises(RPCError) as denied:
            m.dispatch(etree.fromstring(
                f'<restore_svc_link xmlns="{QKDN_INV_NS}"><qkdl_id>{sid}</qkdl_id>'
                "</restore_svc_link>"))
        assert denied.value.tag == "resource-denied"
        assert net.admission.session(sid).state is SessionState.ACTIVE
        assert all(sid in net.apps(n) for n in "abc")


def test_netconf_console2_reads_the_service_links(net):
    net.establish()
    console = Path(sys.executable).with_name("netconf-console2")
    done = subprocess.run(
        [str(console), "--host", "127.0.0.1", "--port", str(net.nbi.port), "-u", "admin",
         "-p", NBI_PASSWORD, "--get", "-x", "/qkd_network/qkd_links/svc_links"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "svc_link" in done.stdout and "session_state" in done.stdout
    assert "active" in done.stdout


def _wait_notification(m, name: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        note = m.take_notification(timeout=0.5)
        if note is None:
            continue
        body = note.notification_ele
        for child in body:
            if etree.QName(child).localname == name:
                return child
    raise AssertionError(f"no {name} notification")


def test_controller_process_serves_the_nbi_and_keeps_its_port(tmp_path, capsys):
    import json

    import yaml

    from sdn_controller.daemon import ControllerProcess, resolve_settings

    # agents only: the process brings its own controller
    agents = SquareNetwork(tmp_path, PASSWORD, controller=False)
    state = tmp_path / "state"
    state.mkdir()
    (state / "topology.yaml").write_text(yaml.safe_dump(RAW_TOPOLOGY))
    (state / "endpoints.json").write_text(json.dumps({"topology": "square", "nodes": {
        n.name: {"qkdn_id": n.qkdn_id, "etsi014": f"https://127.0.0.1:1/{n.name}/keys",
                 "netconf": {"host": "127.0.0.1", "port": agents.threads[n.name].port,
                             "username": "admin", "password": PASSWORD}}
        for n in TOPO.nodes}}))
    ports = []
    try:
        for run in range(2):
            process = ControllerProcess(resolve_settings(state, poll_interval_s=0.5,
                                                         tick_s=0.1, environ={}))
            stop = threading.Event()
            runner = threading.Thread(target=process.run, args=(stop,), daemon=True)
            runner.start()
            try:
                ready = state / "controller" / "ready.json"
                wait_for(ready.exists, timeout=15, what="controller ready")
                nbi = json.loads(ready.read_text())["nbi"]
                assert oct(ready.stat().st_mode & 0o777) == "0o600"
                assert nbi == json.loads((state / "controller" / "nbi.json").read_text())
                ports.append(nbi["port"])
                from qkdn.cli import main
                assert main(["nbi", "--state-dir", str(state), "--json"]) == 0
                assert json.loads(capsys.readouterr().out) == nbi
                with connect(nbi["host"], nbi["port"], nbi["username"], nbi["password"]) as m:
                    nodes = f'<qkd_network xmlns="{QKDN_TOPO_NS}"><sdqkd_nodes/></qkd_network>'
                    data = m.get(filter=("subtree", nodes)).data_ele
                    kme = data.findtext(".//i:kme/i:etsi014_url", namespaces=NS)
                    assert kme.startswith("https://127.0.0.1:1/")
                    if run == 0:  # edits survive: users in the user database, fibre
                        m.edit_config(target="running", config=NEW_USERS)  # data in a file
                        m.edit_config(target="running", config=_fibre(lid("a", "d"), "31.5"))
                    else:
                        users = m.get_config(source="running", filter=(
                            "subtree", f'<qkd_access xmlns="{QKDN_ACC_NS}"/>')).data_ele
                        names = [u.findtext("a:name", namespaces=NS)
                                 for u in users.findall(".//a:user", NS)]
                        assert "bank-a" in names
                        length = m.get_config(source="running", filter=(
                            "subtree", _fibre(lid("a", "d"), None))).data_ele.findtext(
                            ".//i:phys_length", namespaces=NS)
                        assert length == "31.5"
            finally:
                stop.set()
                runner.join(timeout=20)
        assert ports[0] == ports[1]
    finally:
        agents.close()


def _fibre(qkdl_id: str, length: str | None) -> str:
    """A config (length given) or a subtree filter (None) for one link's phys_length."""
    value = f"<phys_length>{length}</phys_length>" if length else "<phys_length/>"
    body = f"""<qkd_network xmlns="{QKDN_TOPO_NS}"><qkd_links><phys_links><phys_link>
        <qkdl_id>{qkdl_id}</qkdl_id><phys_link_details xmlns="{QKDN_INV_NS}">{value}
        </phys_link_details></phys_link></phys_links></qkd_links></qkd_network>"""
    if length is None:
        return body
    return f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{body}</config>'


def _agent_enable(net, name: str, qkdl_id: str) -> bool:
    """``qkdl_enable`` of a link in an agent's running datastore (015)."""
    node = net.datastores[name].running_json()[NODE]
    (link,) = [lk for lk in node["qkd_links"]["qkd_link"] if lk["qkdl_id"] == qkdl_id]
    return link.get("qkdl_enable", True)


def _enable(qkdl_id: str, enabled: bool) -> str:
    return f"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
      <qkd_network xmlns="{QKDN_TOPO_NS}"><qkd_links><phys_links><phys_link>
        <qkdl_id>{qkdl_id}</qkdl_id>
        <phys_link_details xmlns="{QKDN_INV_NS}"><qkdl_enable>{str(enabled).lower()}
        </qkdl_enable></phys_link_details>
      </phys_link></phys_links></qkd_links></qkd_network></config>"""


def test_taking_a_link_out_of_service_moves_its_sessions(net):
    sid = net.establish()
    with net.orchestrator() as m:
        m.edit_config(target="running", config=_enable(lid("b", "c"), False))
        wait_for(lambda: sid in net.apps("d") and sid not in net.apps("b"),
                 what="session moved off b-c")
        assert not net.topology.link(lid("b", "c")).usable
        wait_for(lambda: [_agent_enable(net, n, lid("b", "c")) for n in "bc"] == [False] * 2,
                 what="qkdl_enable false in both agents")
        m.edit_config(target="running", config=_enable(lid("b", "c"), True))
        wait_for(lambda: net.topology.link(lid("b", "c")).usable, what="b-c back")
        wait_for(lambda: [_agent_enable(net, n, lid("b", "c")) for n in "bc"] == [True] * 2,
                 what="qkdl_enable true in both agents")
        time.sleep(1.5)  # the agents' next get (1 s poll) keeps the link usable
        assert net.topology.link(lid("b", "c")).usable
        # nodes and links come from the topology file: no new ones
        with pytest.raises(RPCError) as refused:
            m.edit_config(target="running", config=f"""<config
                xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><qkd_network
                xmlns="{QKDN_TOPO_NS}"><sdqkd_nodes><sdqkd_node>
                <qkdn_id>99999999-9999-4999-8999-999999999999</qkdn_id></sdqkd_node>
                </sdqkd_nodes></qkd_network></config>""")
        assert refused.value.tag == "operation-not-supported"
        # service links are state: an edit cannot create one
        with pytest.raises(RPCError):
            m.edit_config(target="running", config=f"""<config
                xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><qkd_network
                xmlns="{QKDN_TOPO_NS}"><qkd_links><svc_links><svc_link>
                <qkdl_id>{sid}</qkdl_id></svc_link></svc_links></qkd_links></qkd_network>
                </config>""")


def test_an_unreachable_agent_raises_and_clears_a_node_alarm(net):
    def observe():
        net.nbi.observe_agents({n: s.connected for n, s in net.southbound.items()})

    with net.orchestrator() as m:
        m.create_subscription()
        observe()
        port = net.threads["d"].port
        net.threads["d"].stop()
        wait_for(lambda: not net.southbound[nid("d")].connected, what="disconnect noticed")
        observe()
        alarm = _wait_notification(m, "alarm")
        assert alarm.findtext(".//i:alarm_type", namespaces=NS).endswith("NODE-UNREACHABLE")
        assert alarm.findtext(".//i:qkdn_id", namespaces=NS) == nid("d")
        assert alarm.findtext(".//i:cleared", namespaces=NS) == "false"
        node_d = (f'<qkd_network xmlns="{QKDN_TOPO_NS}"><sdqkd_nodes><sdqkd_node>'
                  f"<qkdn_id>{nid('d')}</qkdn_id></sdqkd_node></sdqkd_nodes></qkd_network>")
        data = m.get(filter=("subtree", node_d)).data_ele
        assert data.findtext(".//t:qkdn_status", namespaces=NS).endswith("OUT")
        net.start_agent("d", port=port)
        wait_for(lambda: net.southbound[nid("d")].connected, timeout=15, what="reconnect")
        observe()
        cleared = _wait_notification(m, "alarm")
        assert cleared.findtext(".//i:cleared", namespaces=NS) == "true"
