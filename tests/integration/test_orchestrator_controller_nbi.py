"""The orchestrator on the controller's real north-bound NETCONF server: four real agents, the
controller's southbound and its NBI server (the `Network` of test_controller_nbi.py), one
session a → b → c. Skipped in a build without the controller's NBI server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytest.importorskip("sdn_controller.nbi_server",
                    reason="this build has no controller north-bound server")
nbi_test = pytest.importorskip("tests.integration.test_controller_nbi",
                               reason="the controller NBI test network is not available")

from orchestrator.daemon import Orchestrator, OrchestratorSettings
from orchestrator.nbi_client import NbiEndpoint

pytestmark = pytest.mark.integration


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[object, str, Orchestrator, requests.Session]]:
    network = nbi_test.Network(tmp_path)
    try:
        assert network.southbound.wait_connected(30), "southbound did not connect"
        nbi_test.wait_for(lambda: len([lk for lk in network.topology.links() if lk.usable])
                          == 4, timeout=30, what="topology")
        session_id = network.establish()
        settings = OrchestratorSettings(
            nbi=NbiEndpoint("127.0.0.1", network.nbi.port, "admin", nbi_test.NBI_PASSWORD),
            token_file=tmp_path / "token")
        with Orchestrator(settings) as orchestrator:
            http = requests.Session()
            http.trust_env = False
            http.headers["Authorization"] = f"Bearer {orchestrator.token}"
            yield network, session_id, orchestrator, http
    finally:
        network.close()


def test_orchestrator_on_the_controllers_nbi(running) -> None:
    _, session_id, orchestrator, http = running
    base = orchestrator.base_url + "/api/v1"
    body = http.get(f"{base}/qkd_network", timeout=10).json()["qkd_network"]
    assert len(body["sdqkd_nodes"]["sdqkd_node"]) == 4
    assert len(body["qkd_links"]["phys_links"]["phys_link"]) == 4
    (session,) = http.get(f"{base}/sessions", timeout=10).json()["svc_link"]
    assert session["qkdl_id"] == session_id
    assert [h["qkdn_id"] for h in session["paths"]["path"][0]["hop"]] == [
        nbi_test.nid(n) for n in "abc"]
    assert session["svc_link_details"]["session_state"] == "active"

    assert http.post(f"{base}/sla_profiles", timeout=10, json={
        "name": "gold", "max_bandwidth": 400_000,
        "path_restoration": {"restoration_type": "MANUAL"}}).status_code == 201
    assert http.post(f"{base}/users", timeout=10,
                     json={"name": "bank", "sla_profile": "gold"}).status_code == 201
    revoked = http.post(f"{base}/users/bank/revoke", json={"reason": "audit"}, timeout=10)
    assert revoked.json()["revoked"] is True
    assert http.delete(f"{base}/sla_profiles/std", timeout=10).status_code == 409

    restored = http.post(f"{base}/sessions/{session_id}/restore", timeout=10)
    assert restored.status_code == 200, restored.text
    assert restored.json()["paths"]["path"][0]["hop"][0]["qkdn_id"] == nbi_test.nid("a")
    closed = http.post(f"{base}/sessions/{session_id}/close", json={"reason": "test"},
                       timeout=10)
    assert closed.status_code == 200, closed.text
    deadline = time.monotonic() + 10
    removed = []
    while not removed and time.monotonic() < deadline:
        removed = http.get(f"{base}/events?type=qkdn_resource_removed", timeout=10
                           ).json()["events"]
        time.sleep(0.1)
    assert removed and removed[0]["data"]["svc_link"]["qkdl_id"] == session_id
    assert orchestrator.recorder.rejected == 0  # every notification validated
