"""The controller's decisions reach the applications (separate processes: six nodes in a ring
and the controller, as ``qkdn up`` starts them): access refusals (unknown SAE, revoked user)
as ETSI 014 401 / 004 status 4, QoS above the SLA as 004 status 7 with the counter-proposal,
idle expiry at every KM of the path, and a reroute around a cut link with keys flowing."""

from __future__ import annotations

import time

import pytest

from qkd_twin.faults import FaultKind, append_fault
from qkdn.bringup import network_status
from sdn_controller.cli import open_users_db

from . import ring_network as rn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXTRA = {
    "slas": [{"name": "small", "max_bps": 2000, "min_bps": 256, "max_priority": 2,
              "max_sessions": 4, "idle_timeout_s": 60},
             {"name": "brief", "max_bps": 1000000, "min_bps": 1024, "max_priority": 5,
              "max_sessions": 4, "idle_timeout_s": 3}],
    "users": [{"name": "mallory", "sla": "standard"},
              {"name": "former", "sla": "standard", "revoked": True},
              {"name": "thrifty", "sla": "small"},
              {"name": "hasty", "sla": "brief"}],
    "saes": [{"id": "sae-m", "node": "0", "user": "mallory"},
             {"id": "sae-r", "node": "0", "user": "former"},
             {"id": "sae-t", "node": "0", "user": "thrifty"},
             {"id": "sae-h", "node": "3", "user": "hasty"}],
}


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    with rn.running_network(tmp_path_factory.mktemp("ring-ctl"),
                            rn.ring_topology(EXTRA)) as net:
        # the operator removes mallory's application: its SAE id is unknown from now on
        users = open_users_db(net.state.root)
        try:
            users.remove_application("sae-m")
        finally:
            users.close()
        yield net


def test_unknown_application_is_refused_401_and_004_status_4(ring):
    started = time.monotonic()
    r = ring.enc_keys("sae-m", "sae-2")
    assert r.status_code == 401, r.text
    assert time.monotonic() - started < 4  # the refusal, not the KM's own wait
    assert r.json()["details"] == [{"reason": "unknown-application", "etsi004_status": 4}]
    reply = ring.open_connect("sae-m", "sae-2", {"timeout": 20000})
    assert reply["status"] == 4


def test_revoked_user_is_refused_401_and_004_status_4(ring):
    r = ring.enc_keys("sae-r", "sae-1")
    assert r.status_code == 401, r.text
    assert "user-revoked" in r.json()["message"]
    started = time.monotonic()
    assert ring.open_connect("sae-r", "sae-1", {"timeout": 20000})["status"] == 4
    assert time.monotonic() - started < 4
    assert rn.wait_for(lambda: "user-revoked" in {
        r["reason"] for r in ring.snapshot()["refusals"]}, 5), network_status(ring.state)


def test_qos_above_the_sla_is_status_7_with_the_counter_proposal(ring):
    reply = ring.open_connect("sae-t", "sae-1", {"max_bps": 5000, "min_bps": 1000,
                                                 "priority": 4, "timeout": 20000,
                                                 "key_chunk_size": 32})
    assert reply["status"] == 7
    assert reply["QoS"]["max_bps"] == 2000 and reply["QoS"]["priority"] == 2
    assert reply["QoS"]["min_bps"] == 1000 and reply["QoS"]["key_chunk_size"] == 32
    assert ring.session_between("sae-t", "sae-1") is None


def test_idle_session_is_closed_at_every_km_of_its_path(ring):
    enc, dec = ring.keys("sae-h", "sae-1")   # node 3 -> node 1 through node 2
    assert enc == dec
    session = rn.wait_for(lambda: ring.session_between("sae-h", "sae-1"), 5)
    assert session is not None and session["paths"][0]["nodes"] == ["3", "2", "1"]
    sid = session["session_id"]
    assert sid in ring.session_config("2")[0]
    assert any(v > 0 for v in ring.snapshot()["reserved_bps"].values())
    # no key request for the SLA's 3 s: the session ends everywhere, resources released
    assert rn.wait_for(lambda: ring.session_between("sae-h", "sae-1") is None, 15)
    for node in ("3", "2", "1"):
        assert rn.wait_for(lambda n=node: sid not in ring.session_config(n)[0], 10), node
    apps, virt = ring.session_config("2")
    assert sid not in apps and not virt
    assert rn.wait_for(lambda: not any(ring.snapshot()["reserved_bps"].values()), 5)


def test_reroute_around_a_cut_link_keeps_keys_flowing(ring):
    enc, dec = ring.keys("sae-0", "sae-2")
    assert enc == dec
    session = rn.wait_for(lambda: ring.session_between("sae-0", "sae-2"), 5)
    assert session["paths"][0]["nodes"] == ["0", "1", "2"]
    sid = session["session_id"]
    append_fault(ring.state.root, "0", "1", FaultKind.LINK_DOWN, None)
    try:
        moved = rn.wait_for(lambda: (s := ring.session_between("sae-0", "sae-2")) and
                            s["paths"][0]["nodes"] != ["0", "1", "2"] and s, 20)
        assert moved, ring.snapshot()["events"][-5:]
        assert moved["session_id"] == sid
        assert moved["paths"][0]["nodes"] == ["0", "5", "4", "3", "2"]
        for _ in range(3):   # keys keep arriving, on the new path, identical at both ends
            enc, dec = ring.keys("sae-0", "sae-2", number=2)
            assert enc == dec
        for relay in ("5", "4", "3"):
            assert sid in ring.session_config(relay)[0]
        assert rn.wait_for(lambda: sid not in ring.session_config("1")[0], 10)
    finally:
        append_fault(ring.state.root, "0", "1", FaultKind.LINK_UP, None)
