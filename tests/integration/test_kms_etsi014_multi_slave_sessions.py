"""ETSI 014 ``additional_slave_SAE_IDs`` share enc_keys' code path (real KMs on loopback):
every (master, slave) pair's session records the request and the keys (events), counts them
per provenance, reports ``km_key_request`` with its outcome, and — with a controller — the
request waits for every pair's configuration instead of failing at once."""

import threading
import time

import pytest
import requests

from kms.key_manager import KmConfig, direct_session_id
from kms.local_network import LocalKmNetwork, link_id, node_qkdn_id
from qkdn.event_log import EventKind

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-b": "B", "sae-c": "C"}
KM_REQUEST = "qkdn-key-manager:km_key_request"
APPS = {"sae-b": "33333333-2222-4333-8444-555555555555",
        "sae-c": "44444444-2222-4333-8444-555555555555"}


def enc(net, body):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert("sae-a"), net.ca
    return s.post(net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys", json=body, timeout=15)


def key_requests(net, node="A"):
    return [b[KM_REQUEST] for n, b in net.notifications if n == node and KM_REQUEST in b]


def test_every_pair_session_sees_the_request_the_keys_and_the_outcome(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("A", "C")], SAES,
                        config=KmConfig(relay_batch=4)) as net:
        net.feed("A", "B", blocks=4)
        net.feed("A", "C", blocks=4)
        r = enc(net, {"number": 2, "additional_slave_SAE_IDs": ["sae-c"]})
        assert r.status_code == 200, r.text
        km = net.kms["A"]
        sessions = [direct_session_id("sae-a", s) for s in ("sae-b", "sae-c")]
        events = km.telemetry.recorder.recent()
        for sid in sessions:
            kinds = [e.event for e in events if e.session == sid]
            assert EventKind.REQUEST in kinds and EventKind.KEY_RETURNED in kinds
            returned = next(e for e in events if e.session == sid
                            and e.event is EventKind.KEY_RETURNED)
            assert returned.detail["keys"] == 2 and returned.detail["bits"] == 512
            assert km.delivered_by_provenance()[sid]["qkd"] == [2, 512]
        reports = {b["app_id"]: b for b in key_requests(net)}
        assert set(reports) == set(sessions)
        assert {b["outcome"] for b in reports.values()} == {"delivered"}


def test_a_pair_short_of_key_reports_insufficient_key_on_every_session(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("A", "C")], SAES,
                        config=KmConfig(relay_batch=4)) as net:
        net.feed("A", "B", blocks=4)           # nothing on A–C
        r = enc(net, {"number": 1, "additional_slave_SAE_IDs": ["sae-c"]})
        assert r.status_code == 503
        outcomes = {b["app_id"]: b["outcome"] for b in key_requests(net)}
        assert outcomes == {direct_session_id("sae-a", "sae-b"): "insufficient-key",
                            direct_session_id("sae-a", "sae-c"): "insufficient-key"}
        assert net.kms["A"].delivered_by_provenance() == {}


def config(node):
    """Both sessions (sae-a→sae-b over A–B, sae-a→sae-c over A–C) as the controller pushes
    them to ``node``."""
    apps, links = [], []
    for slave, app_id in APPS.items():
        peer = SAES[slave]
        if node not in ("A", peer):
            continue
        remote = peer if node == "A" else "A"
        apps.append({"app_id": app_id, "server_app_id": "sae-a", "client_app_id": [slave],
                     "backing_qkdl_id": [link_id("A", peer)],
                     "remote_qkdn_id": node_qkdn_id(remote),
                     "qkdn-key-manager:km_session": {
                         "role": "source" if node == "A" else "destination"}})
        links.append({"qkdl_id": link_id("A", peer), "qkdl_type": "etsi-qkd-node-types:PHYS",
                      "qkdl_remote": {"qkdn_id": node_qkdn_id(remote)}})
    return {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": node_qkdn_id(node),
                                           "qkd_applications": {"qkd_app": apps},
                                           "qkd_links": {"qkd_link": links}}}


def test_with_a_controller_the_request_waits_for_every_pair(tmp_path):
    with LocalKmNetwork(tmp_path, ["A", "B", "C"], [("A", "B"), ("A", "C")], SAES,
                        config=KmConfig(require_controller=True, config_wait_s=8,
                                        relay_batch=4)) as net:
        net.feed("A", "B", blocks=4)
        net.feed("A", "C", blocks=4)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=enc(net, {"number": 1, "additional_slave_SAE_IDs": ["sae-c"]})))
        t.start()
        new = "etsi-qkd-sdn-node:sdqkdn_application_new"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and \
                sum(new in b for _, b in net.notifications) < 2:
            time.sleep(0.02)
        assert sum(new in b for _, b in net.notifications) == 2   # one per pair
        time.sleep(0.2)
        assert "r" not in result                                  # held, not refused
        for node in ("B", "C", "A"):
            net.kms[node].apply_running_config(config(node))
        t.join(15)
        assert result["r"].status_code == 200, result["r"].text
        outcomes = {b["app_id"]: b["outcome"] for b in key_requests(net)}
        assert outcomes == {APPS["sae-b"]: "delivered", APPS["sae-c"]: "delivered"}
