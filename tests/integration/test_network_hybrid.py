"""Hybrid QKD + post-quantum provisioning on a running network (separate node processes, the
SDN controller, the twin's link faults; ADR 0009): cutting the only link of a hybrid session
keeps keys flowing, marked hybrid and identical at both ends; restoring it brings QKD keys
back; a qkd-only session on the same link gets 503 and never a derived key."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from qkd_twin.faults import FaultKind, append_fault
from qkdn.bringup import bring_down, bring_up
from qkdn.sae_client import sae_client
from qkdn.state_files import StateDir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAIR = {
    "name": "hybrid-pair",
    "nodes": [{"name": "a"}, {"name": "b"}],
    "links": [{"a": "a", "b": "b", "length_km": 10}],
    "slas": [{"name": "plain", "max_bps": 4000000, "min_bps": 20000},
             {"name": "hybrid", "max_bps": 4000000, "min_bps": 20000, "fallback": "hybrid"}],
    "users": [{"name": "h-a", "sla": "hybrid"}, {"name": "h-b", "sla": "hybrid"},
              {"name": "q-a", "sla": "plain"}, {"name": "q-b", "sla": "plain"}],
    "saes": [{"id": "sae-ha", "node": "a", "user": "h-a"}, {"id": "sae-hb", "node": "b", "user": "h-b"},
             {"id": "sae-qa", "node": "a", "user": "q-a"}, {"id": "sae-qb", "node": "b", "user": "q-b"}],
}


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    topology = root / "pair.yaml"
    topology.write_text(yaml.safe_dump(PAIR))
    state = StateDir(root / "state")
    endpoints = bring_up(topology, state, timeout=120, controller=True)
    try:
        yield state, endpoints
    finally:
        bring_down(state)


sae = sae_client


def fault(state, kind, a, b):
    """What ``qkdn fault KIND A B`` does: a record in the link's fault file, which both
    emulated module ends apply from the same block."""
    append_fault(state.root, a, b, FaultKind(kind))


def get_keys(endpoints, master, slave, number=4):
    """enc_keys at the master's KM, dec_keys at the slave's: (status, keys); keys identical."""
    node_m, node_s = master[-1], slave[-1]
    enc = sae(endpoints, master).post(endpoints["nodes"][node_m]["etsi014"] +
                                      f"/{slave}/enc_keys", json={"number": number}, timeout=30)
    if enc.status_code != 200:
        return enc.status_code, []
    keys = enc.json()["keys"]
    dec = sae(endpoints, slave).post(endpoints["nodes"][node_s]["etsi014"] + f"/{master}/dec_keys",
                                     json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]},
                                     timeout=30)
    assert dec.status_code == 200, dec.text
    assert dec.json()["keys"] == keys                      # same bytes, same provenance
    return 200, keys


def until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


def provenance(keys):
    return {k["key_extension"]["provenance"] for k in keys}


@pytest.mark.timeout(600)
def test_link_cut_switches_hybrid_keys_on_and_off_and_qkd_only_gets_503(network):
    state, endpoints = network
    for master, slave in (("sae-ha", "sae-hb"), ("sae-qa", "sae-qb")):
        assert until(lambda m=master, s=slave: get_keys(endpoints, m, s)[0] == 200, 30), master
    status, keys = get_keys(endpoints, "sae-ha", "sae-hb")
    assert status == 200 and provenance(keys) == {"qkd"}

    fault(state, "link-down", "a", "b")
    seen_qkd_only: set[str] = set()

    def qkd_only_refused():
        status, keys = get_keys(endpoints, "sae-qa", "sae-qb")
        seen_qkd_only.update(provenance(keys))
        return status == 503

    def hybrid_flowing():
        status, keys = get_keys(endpoints, "sae-ha", "sae-hb")
        assert status == 200                               # never refused
        return provenance(keys) == {"hybrid"}

    assert until(hybrid_flowing, 15), "hybrid keys never came"
    assert until(qkd_only_refused, 15), "the qkd-only session was still served"
    assert seen_qkd_only <= {"qkd"}                        # never a derived key
    for _ in range(3):
        status, keys = get_keys(endpoints, "sae-ha", "sae-hb")
        assert status == 200 and provenance(keys) == {"hybrid"}

    fault(state, "link-up", "a", "b")
    assert until(lambda: provenance(get_keys(endpoints, "sae-ha", "sae-hb")[1]) == {"qkd"}, 20)

    def hybrid_session():
        done = subprocess.run([sys.executable, "-m", "qkdn.cli", "sessions", "--state-dir",
                               str(state.root), "--json"], capture_output=True, text=True,
                              timeout=60, check=False)
        for s in json.loads(done.stdout)["sessions"]:
            if s["initiator"]["sae_id"] == "sae-ha" and s["key_mode"] == "qkd" and \
                    s["delivered"].get("hybrid", {}).get("keys", 0) > 0:
                return s, json.loads(done.stdout)["events"]
        return None

    found = until(hybrid_session, 15)
    assert found, "sessions.json does not show the hybrid keys"
    session, events = found
    assert session["fallback_policy"] == "hybrid" and session["state"] == "active"
    modes = [e["detail"] for e in events if e["kind"] == "session-key-mode"
             and e["session_id"] == session["session_id"]]
    assert modes[0].startswith("qkd -> hybrid") and modes[-1].startswith("hybrid -> qkd")
