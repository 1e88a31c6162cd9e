"""The orchestrator's REST API over real HTTP against a real NETCONF north-bound server
(orchestrator_nbi_double: the agent's server preloaded with the paper topology): topology and
inventory, users / applications / SLA profiles, sessions, events, alarms and their SSE stream,
faults, authentication (token and client certificate), problem details, metrics, and what
happens when the controller cannot be reached."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from kms.pki import CertificateAuthority
from orchestrator.daemon import Orchestrator, OrchestratorSettings
from orchestrator.nbi_client import NbiEndpoint
from qkd_twin.faults import fault_file, read_faults
from qkdn.topology import load_topology

from .orchestrator_nbi_double import INV, TYPES, NbiDouble, running_nbi_double

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "topologies" / "paper.yaml"
SESSION = "55555551-5555-4555-8555-555555555551"
PROBLEM = "application/problem+json"


class Client:
    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method: str):
        def call(path: str, **kwargs):
            return self.http.request(method.upper(), self.base + path, timeout=10, **kwargs)
        return call


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[NbiDouble, Orchestrator, Client, Path]]:
    state_dir = tmp_path_factory.mktemp("net")
    shutil.copyfile(PAPER, state_dir / "topology.yaml")
    with running_nbi_double(state_dir / "topology.yaml", state_dir) as (double, nbi):
        double.add_session(SESSION, "2", "3", via=["0"])
        settings = OrchestratorSettings(state_dir=state_dir, nbi=NbiEndpoint.from_json(nbi),
                                        token_file=state_dir / "orchestrator" / "token")
        with Orchestrator(settings) as orchestrator:
            deadline = time.monotonic() + 10
            while not orchestrator.listener.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            yield double, orchestrator, Client(orchestrator.base_url, orchestrator.token), \
                state_dir


def problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    return body


# ------------------------------------------------------------------------------ topology


def test_network_has_the_nodes_and_links_of_the_topology_file(network) -> None:
    _, _, api, _ = network
    topology = load_topology(PAPER)
    raw = yaml.safe_load(PAPER.read_text())
    body = api.get("/api/v1/qkd_network").json()["qkd_network"]
    nodes = body["sdqkd_nodes"]["sdqkd_node"]
    links = body["qkd_links"]["phys_links"]["phys_link"]
    assert len(nodes) == len(raw["nodes"]) and len(links) == len(raw["links"])
    assert {n["qkdn_name"] for n in nodes} == {str(n["name"]) for n in raw["nodes"]}
    assert {link["qkdl_id"] for link in links} == {link.qkdl_id for link in topology.links}
    first = links[0]
    # ETSI 018 shapes without module prefixes; identities by bare name; numbers as numbers
    assert first["qkdl_status"] == "ACTIVE"
    perf = first["phys_link_details"]["qkdl_performance"]
    assert perf["skr"] == 100_000 and perf["key_store"]["stored_key_bits"] == 262144
    assert perf["phys_perf"] == [{"perf_type": "QBER", "value": 0.01}]
    assert body["qkd_links"]["svc_links"]["svc_link"][0]["qkdl_id"] == SESSION


def test_nodes_and_links_one_by_one(network) -> None:
    double, _, api, _ = network
    node = double.topology.node("4")
    assert api.get(f"/api/v1/qkd_network/nodes/{node.qkdn_id}").json()["qkdn_name"] == "4"
    assert len(api.get("/api/v1/qkd_network/nodes").json()["sdqkd_node"]) == 6
    link = double.topology.links[0]
    got = api.get(f"/api/v1/qkd_network/links/{link.qkdl_id}").json()
    assert got["qkdl_local"]["qkdn_id"] == double.topology.node(link.a).qkdn_id
    assert "not found" not in problem(
        api.get("/api/v1/qkd_network/nodes/00000000-0000-4000-8000-000000000000"), 404)["detail"]
    bad = problem(api.get("/api/v1/qkd_network/links/not-a-uuid"), 400)
    assert bad["errors"][0]["pointer"] == "/path/qkdl_id"


def test_disable_a_link_is_an_edit_of_phys_link_details(network) -> None:
    double, _, api, _ = network
    link = double.topology.links[5]
    changed = api.patch(f"/api/v1/qkd_network/links/{link.qkdl_id}",
                        json={"phys_link_details": {"qkdl_enable": False}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["phys_link_details"]["qkdl_enable"] is False
    assert api.patch(f"/api/v1/qkd_network/links/{link.qkdl_id}",
                     json={"phys_link_details": {"qkdl_enable": True}}).status_code == 200
    problem(api.patch("/api/v1/qkd_network/links/00000000-0000-4000-8000-000000000000",
                      json={"phys_link_details": {"qkdl_enable": False}}), 404)


# ------------------------------------------------------------------------------ access


def test_user_life_cycle(network) -> None:
    _, _, api, _ = network
    created = api.post("/api/v1/users", json={"name": "bank-a", "sla_profile": "premium",
                                               "allowed_peer": ["user-1"]})
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/api/v1/users/bank-a"
    assert created.json() == {"name": "bank-a", "sla_profile": "premium",
                              "allowed_peer": ["user-1"]}
    assert "exists" in problem(api.post("/api/v1/users", json={"name": "bank-a",
                                                                "sla_profile": "premium"}),
                               409)["detail"]
    assert "leafref" in problem(api.post("/api/v1/users", json={"name": "bank-b",
                                                                 "sla_profile": "gold"}),
                                409)["detail"]
    names = [u["name"] for u in api.get("/api/v1/users").json()["user"]]
    assert "bank-a" in names and "bank-b" not in names

    revoked = api.post("/api/v1/users/bank-a/revoke", json={"reason": "contract ended"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked"] is True
    assert revoked.json()["revoked_reason"] == "contract ended"
    assert api.get("/api/v1/users/bank-a").json()["revoked"] is True

    assert api.delete("/api/v1/users/bank-a").status_code == 204
    problem(api.delete("/api/v1/users/bank-a"), 404)
    problem(api.get("/api/v1/users/bank-a"), 404)


def test_invalid_bodies_name_the_bad_fields(network) -> None:
    _, _, api, _ = network
    body = problem(api.post("/api/v1/users", json={"name": "bank c", "sla_profile": 7,
                                                    "colour": "red"}), 400)
    pointers = {e["pointer"] for e in body["errors"]}
    assert {"/name", "/sla_profile"} <= pointers
    assert any("colour" in e["detail"] for e in body["errors"])
    body = problem(api.post("/api/v1/sla_profiles", json={
        "name": "odd", "max_bandwidth": 10, "min_bandwidth": 20}), 400)
    assert body["errors"] == [{"pointer": "/min_bandwidth",
                               "detail": "min_bandwidth is above max_bandwidth"}]
    problem(api.post("/api/v1/users", data="not json",
                     headers={"Content-Type": "application/json"}), 400)
    problem(api.post("/api/v1/users", data="name=x",
                     headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    problem(api.post("/api/v1/users"), 400)
    body = problem(api.put("/api/v1/users"), 405)
    assert body["title"] == "Method Not Allowed"
    problem(api.get("/api/v1/nothing-here"), 404)


def test_hostile_json_bodies_are_client_errors(network) -> None:
    """Found by the reliability fuzz (raw garbage): 100,000-deep JSON was a 500
    (RecursionError in the parser)."""
    _, _, api, _ = network
    for path in ("/api/v1/users", "/api/v1/faults", "/api/v1/sessions/" + SESSION + "/close"):
        body = problem(api.post(path, data="[" * 100_000 + "]" * 100_000,
                                headers={"Content-Type": "application/json"}), 400)
        assert "nested too deeply" in body["detail"]
    problem(api.post("/api/v1/users", data='{"name": 1' + "0" * 5000 + "}",
                     headers={"Content-Type": "application/json"}), 400)


def test_sla_profiles_and_applications(network) -> None:
    double, _, api, _ = network
    sla = api.post("/api/v1/sla_profiles", json={
        "name": "gold", "max_bandwidth": 4_000_000, "min_bandwidth": 1024,
        "path_restoration": {"restoration_type": "MANUAL", "hold_off_time": 2000}})
    assert sla.status_code == 201, sla.text
    assert sla.json()["path_restoration"] == {"restoration_type": "MANUAL",
                                              "hold_off_time": 2000}
    patched = api.patch("/api/v1/sla_profiles/gold", json={"max_sessions": 4})
    assert patched.json()["max_sessions"] == 4
    # an SLA profile in use cannot go; one not in use can
    problem(api.delete("/api/v1/sla_profiles/standard"), 409)

    node = double.topology.node("1").qkdn_id
    assert api.post("/api/v1/users", json={"name": "carol", "sla_profile": "gold"}
                    ).status_code == 201
    app = api.post("/api/v1/applications", json={"sae_id": "carol-vpn", "user": "carol",
                                                  "qkdn_id": node})
    assert app.status_code == 201, app.text
    problem(api.post("/api/v1/applications", json={
        "sae_id": "carol-2", "user": "carol",
        "qkdn_id": "00000000-0000-4000-8000-000000000000"}), 409)
    assert api.post("/api/v1/applications/carol-vpn/revoke").json()["revoked"] is True
    problem(api.delete("/api/v1/users/carol"), 409)  # still has an application
    assert api.delete("/api/v1/applications/carol-vpn").status_code == 204
    assert api.delete("/api/v1/users/carol").status_code == 204
    assert api.delete("/api/v1/sla_profiles/gold").status_code == 204


# ------------------------------------------------------------------------------ sessions


def test_sessions_inspect_restore_close(network) -> None:
    double, orchestrator, api, _ = network
    double.add_session("55555552-5555-4555-8555-555555555552", "4", "5")
    listed = api.get("/api/v1/sessions").json()["svc_link"]
    assert {s["qkdl_id"] for s in listed} >= {SESSION, "55555552-5555-4555-8555-555555555552"}
    one = api.get(f"/api/v1/sessions/{SESSION}").json()
    assert one["svc_link_details"]["session_state"] == "active"
    assert [h["hop_index"] for h in one["paths"]["path"][0]["hop"]] == [0, 1, 2]
    restored = api.post(f"/api/v1/sessions/{SESSION}/restore").json()
    assert restored["paths"]["path"][0]["hop"][1]["qkdn_id"] == double.topology.node("0").qkdn_id

    after = orchestrator.events.last_seq
    closed = api.post("/api/v1/sessions/55555552-5555-4555-8555-555555555552/close",
                      json={"reason": "maintenance"})
    assert closed.json() == {"qkdl_id": "55555552-5555-4555-8555-555555555552", "closed": True}
    assert double.closed[-1] == ("55555552-5555-4555-8555-555555555552", "maintenance")
    problem(api.delete("/api/v1/sessions/55555552-5555-4555-8555-555555555552"), 404)
    problem(api.get("/api/v1/sessions/55555552-5555-4555-8555-555555555552"), 404)
    # the controller's qkdn_resource_removed reached the event log
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        page = api.get(f"/api/v1/events?after={after}&type=qkdn_resource_removed").json()
        if page["events"]:
            break
        time.sleep(0.05)
    assert page["events"][0]["data"] == {
        "svc_link": {"qkdl_id": "55555552-5555-4555-8555-555555555552"}, "reason": "closed"}


# ------------------------------------------------------------------------------ events


def _alarm(link: str, cleared: bool) -> dict:
    return {f"{INV}:alarm": {
        "alarm_type": f"{INV}:QBER-HIGH", "severity": f"{TYPES}:{'MINOR' if cleared else 'MAJOR'}",
        "cleared": cleared, "phys_link": {"qkdl_id": link}, "message": "QBER 0.160 above 0.110"}}


def test_events_alarms_and_their_stream(network) -> None:
    double, orchestrator, api, _ = network
    links = [link.qkdl_id for link in double.topology.links]
    start = orchestrator.events.last_seq
    stream = api.get(f"/api/v1/events/stream?after={start}&limit=3", stream=True)
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    double.notify(_alarm(links[0], False))
    double.notify(_alarm(links[1], False))
    double.notify(_alarm(links[0], True))
    received = []
    for line in stream.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            received.append(json.loads(line[6:]))
    assert [e["type"] for e in received] == ["alarm"] * 3
    assert [e["data"]["cleared"] for e in received] == [False, False, True]
    assert received[0]["data"]["alarm_type"] == "QBER-HIGH"
    assert received[0]["data"]["severity"] == "MAJOR"

    page = api.get(f"/api/v1/events?after={start}&limit=2").json()
    assert [e["seq"] for e in page["events"]] == [start + 1, start + 2]
    rest = api.get(f"/api/v1/events?after={page['next_cursor']}").json()
    assert rest["events"][0]["seq"] == start + 3
    active = api.get("/api/v1/alarms?active=true").json()["alarms"]
    assert [a["data"]["phys_link"]["qkdl_id"] for a in active] == [links[1]]
    assert len(api.get(f"/api/v1/alarms?after={start}").json()["alarms"]) == 3
    problem(api.get("/api/v1/events?limit=0"), 400)
    problem(api.get("/api/v1/events?after=x"), 400)

    # Last-Event-ID resumes a stream
    resumed = api.get("/api/v1/events/stream?limit=1", stream=True,
                      headers={"Last-Event-ID": str(start + 2)})
    ids = [line for line in resumed.iter_lines(decode_unicode=True) if line.startswith("id: ")]
    assert ids == [f"id: {start + 3}"]


# ------------------------------------------------------------------------------ faults


def test_fault_actions_use_the_twin(network) -> None:
    double, _, api, state_dir = network
    done = api.post("/api/v1/faults", json={"action": "eavesdrop", "value": 0.2,
                                            "link": {"nodes": ["5", "0"]}})
    assert done.status_code == 202, done.text
    assert done.json()["link"]["nodes"] == ["0", "5"]
    records = read_faults(fault_file(state_dir, "0", "5"))
    assert records[-1].kind.value == "eavesdrop" and records[-1].value == 0.2
    link = next(link for link in double.topology.links if {link.a, link.b} == {"0", "1"})
    assert api.post("/api/v1/faults", json={"action": "link-down",
                                            "link": {"qkdl_id": link.qkdl_id}}).status_code == 202
    time.sleep(0.6)  # effective from the block after next (0.25 s blocks)
    states = {f["qkdl_id"]: f["state"] for f in api.get("/api/v1/faults").json()["links"]}
    assert states[link.qkdl_id]["down"] is True
    assert api.get(f"/api/v1/qkd_network/links/{link.qkdl_id}").json()["qkdl_status"] == "OFF"
    api.post("/api/v1/faults", json={"action": "clear", "link": {"nodes": ["0", "1"]}})
    problem(api.post("/api/v1/faults", json={"action": "link-down",
                                             "link": {"nodes": ["1", "2"]}}), 404)
    problem(api.post("/api/v1/faults", json={"action": "eavesdrop", "value": 2,
                                             "link": {"nodes": ["0", "1"]}}), 400)
    problem(api.post("/api/v1/faults", json={"action": "node-kill", "node": "9"}), 404)


# ------------------------------------------------------------------------------ auth, metrics


def test_authentication_and_open_documents(network) -> None:
    _, orchestrator, _, _ = network
    http = requests.Session()
    http.trust_env = False
    base = orchestrator.base_url
    body = problem(http.get(base + "/api/v1/qkd_network"), 401)
    assert "Bearer" in body["detail"]
    assert http.get(base + "/api/v1/users").headers["WWW-Authenticate"].startswith("Bearer")
    problem(http.get(base + "/api/v1/users", headers={"Authorization": "Bearer wrong"}), 401)
    problem(http.get(base + "/api/v1/users", headers={"Authorization": "Basic YTpi"}), 401)
    doc = http.get(base + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1") and "/api/v1/qkd_network" in doc["paths"]
    page = http.get(base + "/dashboard/")
    assert page.status_code == 200 and "<svg" in page.text
    assert http.get(base + "/", allow_redirects=False).headers["Location"].endswith("/dashboard/")
    token_file = orchestrator.settings.token_file
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_metrics(network) -> None:
    _, orchestrator, api, _ = network
    api.get("/api/v1/users")
    text = requests.get(orchestrator.base_url + "/metrics", timeout=5,
                        proxies={"http": None}).text
    assert 'qkdn_orchestrator_requests_total{method="GET",route="/api/v1/users",status="200"}' \
        in text
    assert "qkdn_orchestrator_controller_subscribed 1.0" in text
    assert "qkdn_orchestrator_request_seconds_bucket" in text


def test_unreachable_controller_is_a_502(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = OrchestratorSettings(nbi=NbiEndpoint("127.0.0.1", port, "u", "p", timeout_s=2),
                                    token_file=tmp_path / "token")
    with Orchestrator(settings) as orchestrator:
        api = Client(orchestrator.base_url, orchestrator.token)
        body = problem(api.get("/api/v1/qkd_network"), 502)
        assert body["type"].endswith("/controller-unavailable")
        assert api.get("/api/v1/status").json()["controller"]["subscribed"] is False
        problem(api.get("/api/v1/faults"), 501)  # no twin without a state directory


def test_operator_client_certificate_over_https(network, tmp_path: Path) -> None:
    _, _, _, _ = network
    ca = CertificateAuthority.create_or_load(tmp_path / "pki")
    server = ca.issue(tmp_path / "pki", "orchestrator", "localhost", "orchestrator",
                      server=True, client=False, dns_names=["localhost"])
    operator = ca.issue(tmp_path / "pki", "alice", "alice", "operator", server=False,
                        client=True)
    sae = ca.issue(tmp_path / "pki", "sae-1", "sae-1", "sae", server=False, client=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = OrchestratorSettings(
        nbi=NbiEndpoint("127.0.0.1", port, "u", "p", timeout_s=2),
        token_file=tmp_path / "token", tls_cert=server.cert, tls_key=server.key,
        tls_ca=ca.paths.cert)
    with Orchestrator(settings) as orchestrator:
        http = requests.Session()
        http.trust_env = False
        http.verify = str(ca.paths.cert)
        url = orchestrator.base_url + "/api/v1/status"
        assert url.startswith("https://")
        ok = http.get(url, cert=(str(operator.cert), str(operator.key)))
        assert ok.status_code == 200, ok.text
        assert "OU=sae" in problem(http.get(url, cert=(str(sae.cert), str(sae.key))),
                                   403)["detail"]
        problem(http.get(url), 401)
        token = http.get(url, headers={"Authorization": f"Bearer {orchestrator.token}"})
        assert token.status_code == 200


def test_qkdn_orchestrator_process_with_tls(network, tmp_path: Path) -> None:
    """``qkdn orchestrator --state-dir DIR --tls``: certificates from the network CA, the
    operator's client certificate works, ready.json names them, SIGTERM stops it."""
    import subprocess
    import sys

    double, _, _, _ = network
    nbi = double.agent
    state_dir = tmp_path / "net"
    state_dir.mkdir()
    password = tmp_path / "nbi-password"
    password.write_text("nbi-secret\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "qkdn.cli", "orchestrator", "--state-dir", str(state_dir),
         "--tls", "--nbi-host", "127.0.0.1", "--nbi-port", str(nbi.port),
         "--nbi-user", "orchestrator", "--nbi-password-file", str(password)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready_file = state_dir / "orchestrator" / "ready.json"
        deadline = time.monotonic() + 60
        while not ready_file.exists():
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "no ready.json"
            time.sleep(0.1)
        ready = json.loads(ready_file.read_text())
        assert ready["url"].startswith("https://127.0.0.1:")
        http = requests.Session()
        http.trust_env = False
        http.verify = ready["ca_cert"]
        reply = http.get(ready["url"] + "/api/v1/qkd_network/nodes", timeout=20,
                         cert=(ready["operator_cert"], ready["operator_key"]))
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["sdqkd_node"]) == 6
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
        process.stdout.close()
