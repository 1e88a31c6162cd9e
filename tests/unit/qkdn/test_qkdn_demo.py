"""The demo without a network: progress lines, the --keep help, the report with events."""

from __future__ import annotations

import threading
import time

from qkdn.demo import Progress


def test_prints_changes_and_heartbeats_only():
    lines: list[str] = []
    state = {"n": 0, "calls": 0}
    done = threading.Event()

    def status():
        state["calls"] += 1
        if state["calls"] == 6:
            state["n"] = 1
        if state["calls"] >= 12:
            done.set()
        return state["n"], f"n={state['n']} call={state['calls']}"

    with Progress(lines.append, status, interval=0.01, heartbeat=60):
        assert done.wait(5)
    assert [line.split()[0] for line in lines] == ["n=0", "n=1"]

    lines.clear()
    with Progress(lines.append, lambda: (0, "same"), interval=0.01, heartbeat=0.05):
        time.sleep(0.3)
    assert 2 <= len(lines) <= 8   # the first state, then heartbeats


def test_a_status_that_fails_is_skipped():
    lines: list[str] = []
    calls = []

    def status():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("file being rewritten")
        return 1, "ok"

    with Progress(lines.append, status, interval=0.01, heartbeat=60):
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
    assert lines == ["ok"]


def test_keep_prints_how_to_reach_and_stop_the_network(tmp_path):
    from qkdn.demo import access_help
    from qkdn.state_files import StateDir

    endpoints = {"nodes": {"0": {"netconf": {"host": "127.0.0.1", "port": 830,
                                             "username": "qkdn", "password": "pw"},
                                 "etsi014": "https://127.0.0.1:1/api/v1/keys",
                                 "metrics_url": "http://127.0.0.1:2/metrics"}},
                 "controller": {"log": "c.log", "metrics_url": "http://127.0.0.1:3/metrics"},
                 "ca_cert": "ca.pem"}
    text = "\n".join(access_help(endpoints, StateDir(tmp_path)))
    assert "netconf 127.0.0.1:830" in text and "http://127.0.0.1:2/metrics" in text
    assert "http://127.0.0.1:3/metrics" in text and "pw" not in text
    assert text.splitlines()[-1] == f"stop with: qkdn down --state-dir {tmp_path}"


def test_report_lists_events_relative_to_the_start():
    from qkdn.demo import build_report
    from qkdn.event_log import Event, EventKind
    from qkdn.paper_scenario import FlowResult

    result = FlowResult("2", "3", "014", keys_match=True, key_ids=["k1"], first_key_s=0.8)
    events = [Event(101.5, "0", EventKind.RELAY_HOP_RECEIVED, "S", {"role": "relay"})]
    report = build_report([result], {frozenset({"sae-2", "sae-3"}): ["2", "0", "3"]},
                          events, 100.0)
    assert report["pairs"][0]["path"] == ["2", "0", "3"]
    assert report["time_to_first_key_s"] == 0.8 and report["started_at"] == 100.0
    assert report["events"] == [{"t": 1.5, "node": "0", "event": "relay_hop_received",
                                 "session": "S", "detail": {"role": "relay"}}]
