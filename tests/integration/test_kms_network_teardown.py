"""An in-process KM network (three KMs, a relayed session, SAE clients) gives back every
socket it opened when it stops — deterministically, with the garbage collector off — and
leaves nothing behind in cheroot's process-wide statistics (which kept each server, its app
and the whole KM reachable for ever)."""

import gc
import logging
import os
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from kms.key_manager import KmConfig
from kms.local_network import LocalKmNetwork, node_qkdn_id, virtual_link

pytestmark = pytest.mark.integration

SAES = {"sae-a": "A", "sae-c": "C", "sae-b": "B"}
SESSION = str(uuid.UUID("21111111-2222-4333-8444-555555555555"))
VIRT = str(uuid.UUID("29999999-2222-4333-8444-555555555555"))


def running_config(node, prev, nxt):
    link = virtual_link(VIRT, SESSION, prev, nxt, ends=("A", "C"), bandwidth=100000)
    body = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": [link]}}
    if node != "B":
        body["qkd_applications"] = {"qkd_app": [{
            "app_id": SESSION, "app_type": "etsi-qkd-node-types:CLIENT",
            "server_app_id": "sae-a", "client_app_id": ["sae-c"], "app_priority": 5,
            "backing_qkdl_id": [VIRT], "local_qkdn_id": node_qkdn_id(node),
            "app_qos": {"max_bandwidth": 10_000_000},
            "qkdn-key-manager:km_session": {"role": "source" if node == "A" else "destination",
                                            "idle_timeout": 60}}]}
    return {"etsi-qkd-sdn-node:qkd_node": body}


def open_sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:     # the directory's own descriptor, closed meanwhile
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def client(net, sae):
    s = requests.Session()
    s.trust_env = False
    s.cert, s.verify = net.sae_cert(sae), net.ca
    return s


def run_network(state_dir, kept: list) -> None:
    """Start the network, relay keys A→B→C from four threads at once (several keep-alive
    relay connections per hop), adjacent keys A→B, then stop it."""
    with LocalKmNetwork(state_dir, ["A", "B", "C"], [("A", "B"), ("B", "C")], SAES,
                        config=KmConfig(relay_batch=1)) as net:
        kept.extend(weakref.ref(km) for km in net.kms.values())
        net.feed("A", "B", blocks=8)
        net.feed("B", "C", blocks=8)
        net.kms["A"].apply_running_config(running_config("A", None, "B"))
        net.kms["B"].apply_running_config(running_config("B", "A", "C"))
        net.kms["C"].apply_running_config(running_config("C", "B", None))

        def one_pair(_):
            with client(net, "sae-a") as a, client(net, "sae-c") as c:
                r = a.post(net.kms["A"].base_url + "/api/v1/keys/sae-c/enc_keys",
                           json={"number": 2}, timeout=10)
                assert r.status_code == 200, r.text
                ids = [{"key_ID": k["key_ID"]} for k in r.json()["keys"]]
                r = c.post(net.kms["C"].base_url + "/api/v1/keys/sae-a/dec_keys",
                           json={"key_IDs": ids}, timeout=10)
                assert r.status_code == 200, r.text

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one_pair, range(8)))
        with client(net, "sae-a") as a:
            r = a.post(net.kms["A"].base_url + "/api/v1/keys/sae-b/enc_keys",
                       json={"number": 1}, timeout=10)
            assert r.status_code == 200, r.text


def test_stop_closes_every_socket_without_the_garbage_collector(tmp_path):
    run_network(tmp_path / "warm-up", [])     # imports and process-wide objects made once
    statistics = set(getattr(logging, "statistics", {}))
    gc.collect()
    gc.disable()
    try:
        baseline = open_sockets()
        kept: list = []
        run_network(tmp_path / "net", kept)
        left = open_sockets() - baseline
    finally:
        gc.enable()
    assert left == set(), f"{len(left)} socket(s) still open after stop"
    assert set(getattr(logging, "statistics", {})) == statistics   # no server kept there
    gc.collect()
    assert [ref() for ref in kept] == [None, None, None]            # nothing keeps a KM alive
