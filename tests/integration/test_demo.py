"""`qkdn demo` end to end: the paper's scenario on real processes, checked from its report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_reproduces_the_papers_scenario(tmp_path):
    report = tmp_path / "report.json"
    plot = tmp_path / "timeline.png"
    done = subprocess.run([sys.executable, "-m", "qkdn.cli", "demo", "--report", str(report),
                           "--plot", str(plot), "--state-dir", str(tmp_path / "net")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads(report.read_text())
    flows = {(p["a"], p["b"], p["api"]): p for p in data["pairs"]}
    assert set(flows) == {(a, b, api) for a, b in (("0", "1"), ("2", "3"), ("4", "5"))
                          for api in ("014", "004")}
    for (a, b, _), flow in flows.items():
        assert flow["keys_match"] and len(flow["key_ids"]) == 4
        expected = {"2": ["2", "0", "3"]}.get(a, [a, b])
        assert flow["path"] == expected
    assert data["time_to_first_key_s"] is not None
    text = report.read_text()
    assert '"key"' not in text and "key_buffer" not in text  # ids only, no key material
    # everything was torn down
    assert "network stopped" in done.stdout
    _check_events(data, done.stdout)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "  ... " in done.stdout   # progress lines while it ran


def _check_events(data, stdout):
    """Every KM recorded the steps of Fig. 4 that its role implies."""
    events = data["events"]
    assert events and all(set(e) <= {"t", "node", "event", "session", "detail"} for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    nodes_with = {}
    for e in events:
        nodes_with.setdefault(e["event"], set()).add(e["node"])
    every = {"0", "1", "2", "3", "4", "5"}
    for kind in ("request", "authenticated", "path_configured", "qkd_key_available",
                 "key_returned"):
        assert nodes_with[kind] == every, kind
    # relay hops reach the relay (0, for 2-3) and the receiving ends
    assert {"0", "1", "3", "5"} <= nodes_with["relay_hop_received"]
    # the 2-3 sessions: node 0 only relays — configured, key available, relay hop
    sessions_23 = {e["session"] for e in events if e["node"] == "2" and e["event"] == "request"}
    assert len(sessions_23) == 2 and not any(s.startswith("pending:") for s in sessions_23)
    at_relay = {e["event"] for e in events if e["node"] == "0" and e["session"] in sessions_23}
    assert {"path_configured", "qkd_key_available", "relay_hop_received"} <= at_relay
    assert not at_relay & {"request", "authenticated", "key_returned"}
    for session in sessions_23:   # at the source: Fig. 4's order
        firsts = {}
        for e in events:
            if e["node"] == "2" and e["session"] == session:
                firsts.setdefault(e["event"], e["t"])
        assert firsts["request"] <= firsts["authenticated"] <= firsts["path_configured"] \
            <= firsts["key_returned"]
        hops = {}   # first relay hop per node: the relay, then the receiving end only
        for e in events:
            if e["session"] == session and e["event"] == "relay_hop_received":
                hops.setdefault(e["node"], e["t"])
        receiver = set(hops) - {"0"}
        assert "0" in hops and len(receiver) == 1, hops   # keys flow one way (originator)
        assert hops["0"] <= hops[receiver.pop()]
    assert "timeline (seconds from the start of the scenario" in stdout
    assert all(f"KM {n}" in stdout for n in every)
