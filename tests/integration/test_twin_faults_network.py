"""``qkdn fault`` on a running paper network: an eavesdropper and a fiber cut reach the
agents' notifications and operational state (how fast: the benchmark's
``network.fault_to_notification_s``, target 1 s)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytest.importorskip("qkdn.bringup")   # the running network (merged tree only)

pytestmark = pytest.mark.integration

ETSI_NS = "urn:etsi:qkd:yang:etsi-qkd-node"


def _fault(state_dir, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "qkdn.cli", "fault", "--state-dir",
                           str(state_dir), *args, "--json"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _session(network, node: str):
    from qkdn.netconf_client import connect
    nc = network.netconf(node)
    return connect(nc["host"], nc["port"], nc["username"], nc["password"])


def _wait_for(session, predicate, timeout: float) -> tuple[float, str]:
    """(time.time() when a notification matching predicate(xml) arrived, its xml)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        note = session.take_notification(block=True, timeout=0.2)
        if note is not None and predicate(note.notification_xml):
            return time.time(), note.notification_xml
    pytest.fail("notification did not arrive")


def _links(session) -> list:
    reply = session.get(filter=("subtree", (f'<qkd_node xmlns="{ETSI_NS}"><qkd_links/>'
                                           "</qkd_node>")))
    return reply.data_ele.xpath("//*[local-name()='qkd_link']")


def _leaf(link, name: str) -> str | None:
    found = link.xpath(f".//*[local-name()='{name}']")
    return found[0].text if found else None


def test_twin_eavesdropper_and_cut_reach_agents(paper_network):
    node4 = _session(paper_network, "4")
    node0 = _session(paper_network, "0")
    try:
        node4.create_subscription()
        node0.create_subscription()
        time.sleep(0.6)   # let the first perf updates pass
        _fault(paper_network.state.root, "eavesdrop", "4", "5", "0.3")
        _wait_for(node4, lambda x: "<alarm" in x and "QBER" in x, 30.0)
        _fault(paper_network.state.root, "link-down", "0", "1")
        _wait_for(node0, lambda x: "sdqkdn_link_down" in x, 30.0)

        time.sleep(0.3)
        qbers = [float(_leaf(link, "value") or 0) for link in _links(node4)
                 if _leaf(link, "perf_type") and "QBER" in _leaf(link, "perf_type")]
        assert max(qbers) > 0.07            # the 4-5 link: ~1 % + 0.3/4
        statuses = {_leaf(link, "qkdl_status") for link in _links(node0)}
        assert any(s and s.endswith("PASSIVE") for s in statuses)
    finally:
        _fault(paper_network.state.root, "clear", "4", "5")
        _fault(paper_network.state.root, "clear", "0", "1")
        node4.close_session()
        node0.close_session()
