"""KM processes killed with SIGKILL mid-relay and restarted: no key lost, none duplicated,
delivered to both ends or to neither. Three KM subprocesses A–B–C on loopback."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from kms.local_network import directory_for, node_qkdn_id
from kms.pki import issue_network_pki

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODES = ["A", "B", "C"]
LINKS = [("A", "B"), ("B", "C")]
SAES = {"sae-a": "A", "sae-c": "C"}
SESSION = "11111111-2222-4333-8444-555555555555"
VIRT = "99999999-2222-4333-8444-555555555555"
ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(node, prev, nxt):
    link = {"qkdl_id": VIRT, "qkdl_type": "etsi-qkd-node-types:VIRT", "qkdl_applications": [SESSION]}
    if prev:
        link["virt_prev_hop"] = node_qkdn_id(prev)
    if nxt:
        link["virt_next_hop"] = [node_qkdn_id(nxt)]
    body = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": [link]}}
    if node != "B":
        body["qkd_applications"] = {"qkd_app": [{"app_id": SESSION, "server_app_id": "sae-a",
                                                 "client_app_id": ["sae-c"], "backing_qkdl_id": [VIRT]}]}
    return {"etsi-qkd-sdn-node:qkd_node": body}


class Cluster:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.pki = issue_network_pki(tmp, NODES, SAES)
        self.ports = {n: free_port() for n in NODES}
        self.urls = {n: f"https://127.0.0.1:{p}" for n, p in self.ports.items()}
        self.procs = {}

    def spec(self, node, fault_delays=None):
        d = directory_for(node, NODES, LINKS, SAES, self.urls)
        hops = {"A": (None, "B"), "B": ("A", "C"), "C": ("B", None)}[node]
        km = self.pki["kms"][node]
        return {
            "node": node, "qkdn_id": node_qkdn_id(node), "state_dir": str(self.tmp / node),
            "port": self.ports[node],
            "tls": {"cert": km["cert"], "key": km["key"], "ca": self.pki["ca_cert"]},
            "directory": {"saes": dict(d.saes), "links": dict(d.links),
                          "nodes": {n: {"qkdn_id": e.qkdn_id, "relay_url": e.relay_url}
                                    for n, e in d.nodes.items()}},
            "running": running(node, *hops),
            "feed": {q: {"blocks": 4, "size": 4096} for q in d.links.values()},
            "fault_delays": fault_delays or {}, "resolve_interval_s": 0.3, "relay_batch": 1,
        }

    def start(self, node, fault_delays=None):
        spec_path = self.tmp / f"{node}.spec.json"
        spec_path.write_text(json.dumps(self.spec(node, fault_delays)))
        out = open(self.tmp / f"{node}.out", "w")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.procs[node] = subprocess.Popen([sys.executable, "-m", "kms.cli", "km", "serve",
                                             "--spec", str(spec_path)], stdout=out, stderr=subprocess.STDOUT,
                                            env=env, cwd=ROOT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if '"ready": true' in (self.tmp / f"{node}.out").read_text():
                return
            assert self.procs[node].poll() is None, (self.tmp / f"{node}.out").read_text()
            time.sleep(0.05)
        raise AssertionError(f"{node} did not start")

    def kill9(self, node):
        self.procs[node].send_signal(signal.SIGKILL)
        self.procs[node].wait(5)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    def client(self, sae):
        s = requests.Session()
        s.trust_env = False
        s.cert, s.verify = (self.pki["saes"][sae]["cert"], self.pki["saes"][sae]["key"]), self.pki["ca_cert"]
        return s

    def keys_in_db(self, node, state):
        conn = sqlite3.connect(str(self.tmp / node / "km" / "keys.sqlite"))
        try:
            return {r[0] for r in conn.execute("SELECT key_id FROM keys WHERE state=?", (state,))}
        finally:
            conn.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def enc_in_thread(cluster, result):
    def run():
        try:
            result["r"] = cluster.client("sae-a").post(cluster.urls["A"] + "/api/v1/keys/sae-c/enc_keys",
                                                       json={"number": 2}, timeout=15)
        except requests.RequestException as exc:
            result["exc"] = exc
    t = threading.Thread(target=run)
    t.start()
    return t


def wait_until(predicate, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_source_killed_mid_relay_keys_released_after_restart(cluster):
    cluster.start("C")
    cluster.start("B", {"relay_before_forward": 1.5})
    cluster.start("A")
    result = {}
    t = enc_in_thread(cluster, result)
    assert wait_until(lambda: len(cluster.keys_in_db("A", "pending")) == 2, 5)
    pending = cluster.keys_in_db("A", "pending")
    assert wait_until(lambda: "pausing" in (cluster.tmp / "B.out").read_text(), 5)  # at B now
    cluster.kill9("A")
    t.join(20)
    assert "exc" in result  # the SAE never got an answer
    # B still completes the relay: C stores the keys
    assert wait_until(lambda: cluster.keys_in_db("C", "ready") == pending, 10)
    cluster.start("A")   # restarts, resolves its pending relay with C through B
    assert wait_until(lambda: cluster.keys_in_db("A", "ready") == pending, 10)
    r = cluster.client("sae-a").post(cluster.urls["A"] + "/api/v1/keys/sae-c/enc_keys",
                                     json={"number": 2}, timeout=15)
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert {k["key_ID"] for k in keys} == pending  # nothing lost: the same keys, released once
    r = cluster.client("sae-c").post(cluster.urls["C"] + "/api/v1/keys/sae-a/dec_keys",
                                     json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}, timeout=15)
    assert r.status_code == 200 and r.json()["keys"] == keys
    # A hands reserved keys out through its journal and records them as released in the
    # store at its next housekeeping round (kms.key_pool.KeyPool.fold_journal)
    assert wait_until(lambda: cluster.keys_in_db("A", "released") == pending, 5)
    assert cluster.keys_in_db("C", "released") == pending


def test_relay_killed_mid_relay_delivers_to_neither(cluster):
    cluster.start("C")
    cluster.start("B", {"relay_before_forward": 3})
    cluster.start("A")
    result = {}
    t = enc_in_thread(cluster, result)
    assert wait_until(lambda: len(cluster.keys_in_db("A", "pending")) == 2, 5)
    pending = cluster.keys_in_db("A", "pending")
    assert wait_until(lambda: "pausing" in (cluster.tmp / "B.out").read_text(), 5)
    cluster.kill9("B")
    t.join(20)
    assert result["r"].status_code == 503
    cluster.start("B")
    assert wait_until(lambda: cluster.keys_in_db("A", "void") == pending, 10)
    assert cluster.keys_in_db("C", "ready") == set()
    assert cluster.keys_in_db("C", "void") == pending   # tombstones: a late copy is refused
    r = cluster.client("sae-a").post(cluster.urls["A"] + "/api/v1/keys/sae-c/enc_keys",
                                     json={"number": 1}, timeout=15)
    assert r.status_code == 200 and r.json()["keys"][0]["key_ID"] not in pending
