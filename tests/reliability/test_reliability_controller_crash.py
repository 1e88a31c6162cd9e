"""Reliability item 10: kill -9 of the controller during a session's set-up leaves no
half-configured path once it restarts (docs/reliability.md).

A real network (``qkdn up``: node processes, the controller under the supervisor). The
controller is slowed down between configuring a path's relay and its ends
(``QKDN_FAULT_PUSH_PAUSE``, test-only), killed with SIGKILL inside that window, restarted by
the supervisor, and must remove the relay's configuration before it reports ready; a new
request then gets a complete path and identical keys at both ends.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ..integration import ring_network as rn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LINE = {
    "name": "line3",
    "defaults": {"link": {"preset": "reference", "mode": "rate", "length_km": 10}},
    "nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
    "links": [{"a": "a", "b": "b"}, {"a": "b", "b": "c"}],
    "slas": [{"name": "std", "max_bps": 100000, "min_bps": 256, "max_priority": 5,
              "max_sessions": 8, "idle_timeout_s": 60}],
    "users": [{"name": "ua", "sla": "std"}, {"name": "uc", "sla": "std"}],
    "saes": [{"id": "sae-a", "node": "a", "user": "ua"},
             {"id": "sae-c", "node": "c", "user": "uc"}],
}
PAUSE_S = "4"


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    before = os.environ.get("QKDN_FAULT_PUSH_PAUSE")
    os.environ["QKDN_FAULT_PUSH_PAUSE"] = PAUSE_S   # inherited by the supervised controller
    try:
        with rn.running_network(tmp_path_factory.mktemp("crash"), LINE) as net:
            yield net
    finally:
        if before is None:
            os.environ.pop("QKDN_FAULT_PUSH_PAUSE", None)
        else:
            os.environ["QKDN_FAULT_PUSH_PAUSE"] = before


def test_controller_killed_mid_setup_leaves_no_half_configured_path(line):
    first = threading.Thread(target=line.enc_keys, args=("sae-a", "sae-c"))
    first.start()
    try:
        # the relay is configured, the ends are not yet: a half-configured path
        assert rn.wait_for(lambda: line.session_config("b")[0], 20, interval=0.1)
        (sid,) = line.session_config("b")[0]
        assert sid not in line.session_config("a")[0] | line.session_config("c")[0]
        pid = line.controller_pid()
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
    finally:
        first.join()
    # the supervisor restarts the controller; it is ready once it has reconciled every agent
    assert rn.wait_for(lambda: line.controller_pid() not in (None, pid), 60, interval=0.1)
    recovered_s = time.monotonic() - killed
    for node in ("a", "b", "c"):
        apps, virt = line.session_config(node)
        assert sid not in apps and not virt, (node, apps, virt)
    events = line.snapshot()["events"]
    assert any(e["kind"] == "orphans-removed" and sid in e["detail"] for e in events)
    assert sum(e["kind"] == "reconciled" for e in events) == 3
    # a new request gets a complete path and the same keys at both ends
    enc, dec = line.keys("sae-a", "sae-c", number=2, timeout=40)
    assert enc == dec
    session = line.session_between("sae-a", "sae-c") or \
        rn.wait_for(lambda: line.session_between("sae-a", "sae-c"), 5)
    assert session["session_id"] != sid
    for node in ("a", "b", "c"):
        assert session["session_id"] in line.session_config(node)[0]
    print(f"controller killed mid set-up: restarted and reconciled in {recovered_s:.1f} s")
