"""KM processes killed with SIGKILL mid-relay and restarted: no key lost, none duplicated,
delivered to both ends or to neither. Three KM subprocesses A–B–C on loopback."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from .km_relay_line import KmProcesses

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path):
    kms = KmProcesses(tmp_path, blocks=4, block_size=4096)
    try:
        yield kms
    finally:
        kms.stop()


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
    assert wait_until(lambda: "pausing" in cluster.log_path("B").read_text(), 5)  # at B now
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
    assert wait_until(lambda: "pausing" in cluster.log_path("B").read_text(), 5)
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
