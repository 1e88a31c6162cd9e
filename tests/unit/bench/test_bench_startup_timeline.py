"""The start-up timeline's log parsing and the first-key watcher's store-change trigger."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from bench.network_bench import _files_signature, _recorded_netconf_port
from bench.startup_timeline import _node_events, _supervisor_events, process_cpu_s
from qkdn.state_files import StateDir


def _node_line(at: datetime, msg: str) -> str:
    return json.dumps({"ts": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "level": "INFO",
                       "logger": "x", "node": "1", "msg": msg})


def test_node_and_supervisor_logs_become_events(tmp_path):
    state = StateDir(tmp_path)
    at = datetime(2026, 11, 27, 8, 0, 0, 250000, tzinfo=UTC)
    node_log = state.node_log("1")
    node_log.parent.mkdir(parents=True)
    node_log.write_text("\n".join([
        _node_line(at, "NETCONF agent listening on 127.0.0.1:1"),
        "not json",
        _node_line(at, "km-1: HTTPS (mTLS) listening on https://127.0.0.1:2"),
        _node_line(at, "link abc: first key block 7 delivered to the KM (12 bytes)"),
        _node_line(at, "node 1 serving NETCONF on 127.0.0.1:1, KM on 127.0.0.1:2"),
    ]) + "\n")
    record = tmp_path / "twin" / "links" / "abc" / "1.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    events = _node_events(state, "1", {"abc": "0-1"})
    labels = [label for _, label in events]
    assert labels[:4] == ["node 1: agent listening", "node 1: KM listening",
                          "node 1: first key block of link 0-1", "node 1: node ready"]
    assert "node 1: module of link 0-1 started" in labels
    assert events[0][0] == at.timestamp()

    state.supervisor_log.write_text(
        "2026-11-27 08:00:01,500 INFO qkdn.supervisor: started node 1 (pid 9)\n"
        "2026-11-27 08:00:02,000 INFO other.logger: ignored\n")
    (stamp, label), = _supervisor_events(state)
    assert label == "supervisor: started node 1 (pid 9)"
    assert stamp == datetime(2026, 11, 27, 8, 0, 1, 500000).timestamp()


def test_store_signature_changes_only_for_stores_not_yet_seen_with_key(tmp_path):
    (tmp_path / "a.sqlite").write_bytes(b"1")
    (tmp_path / "b.sqlite").write_bytes(b"1")
    before = _files_signature(str(tmp_path), ["b"])
    (tmp_path / "a.sqlite").write_bytes(b"12")          # a store already seen with key
    (tmp_path / "a.sqlite-wal").write_bytes(b"x")
    assert _files_signature(str(tmp_path), ["b"]) == before
    (tmp_path / "b.sqlite-wal").write_bytes(b"x")        # a store still waiting for key
    assert _files_signature(str(tmp_path), ["b"]) != before
    assert _files_signature(str(tmp_path / "missing"), ["b"]) == (None, None)
    assert _files_signature(str(tmp_path), []) == ()


def test_netconf_port_is_read_once_recorded(tmp_path):
    ports = tmp_path / "ports.json"
    assert _recorded_netconf_port(str(ports)) == 0
    ports.write_text("{not json")
    assert _recorded_netconf_port(str(ports)) == 0
    ports.write_text(json.dumps({"km": 9}))
    assert _recorded_netconf_port(str(ports)) == 0
    ports.write_text(json.dumps({"netconf": 8301, "km": 9}))
    assert _recorded_netconf_port(str(ports)) == 8301


def test_process_cpu_of_this_process():
    assert process_cpu_s(os.getpid()) >= 0.0
