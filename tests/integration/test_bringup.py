"""qkdn up / status / down on the paper topology, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from qkdn.bringup import bring_down, bring_up, network_status, pid_alive
from qkdn.demo import fetch_summary
from qkdn.state_files import StateDir, read_json

from .conftest import PAPER

pytestmark = pytest.mark.integration


def _qkdn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qkdn.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_up_status_down_leaves_nothing_running(tmp_path):
    state_dir = tmp_path / "net"
    up = _qkdn("up", str(PAPER), "--state-dir", str(state_dir))
    try:
        assert up.returncode == 0, up.stderr
        endpoints = json.loads((state_dir / "endpoints.json").read_text())
        assert sorted(endpoints["nodes"]) == ["0", "1", "2", "3", "4", "5"]
        node0 = endpoints["nodes"]["0"]
        assert set(node0["netconf"]) == {"host", "port", "username", "password"}
        assert node0["netconf"]["host"] == "127.0.0.1"

        status = _qkdn("status", "--state-dir", str(state_dir), "--json")
        assert status.returncode == 0
        rows = json.loads(status.stdout)["processes"]
        assert sorted(row["kind"] for row in rows) == ["controller"] + ["node"] * 6 + [
            "orchestrator"]
        assert endpoints["orchestrator"]["url"].startswith("http://127.0.0.1:")
        assert all(row["alive"] for row in rows)
        assert endpoints["controller"]["pid"] in [row["pid"] for row in rows]
        pids = [row["pid"] for row in rows]
        supervisor_pid = read_json(state_dir / "supervisor.json")["pid"]

        # every agent already holds its interfaces and physical links from the topology
        summary = fetch_summary(node0["netconf"])
        assert summary.interfaces == 5 and len(summary.links) == 5
        assert {link.link_type for link in summary.links} == {"PHYS"}
        _check_metrics(endpoints)
    finally:
        down = _qkdn("down", "--state-dir", str(state_dir))
    assert down.returncode == 0
    assert not any(pid_alive(pid) for pid in [supervisor_pid, *pids])


def _check_metrics(endpoints):
    """Every node process and the controller serve Prometheus metrics on loopback HTTP."""
    import requests

    from qkdn.metrics import sample_value

    http = requests.Session()
    http.trust_env = False
    for name, node in endpoints["nodes"].items():
        assert node["metrics_url"].startswith("http://127.0.0.1:")
        text = http.get(node["metrics_url"], timeout=10).text
        assert sample_value(text, "qkdn_km_key_store_capacity_bytes") > 0, name
        assert sample_value(text, "qkdn_km_sessions", state="operative") == 0
        # the controller's get and subscription went through this agent
        assert sample_value(text, "qkdn_netconf_rpc_seconds_count", operation="get",
                            outcome="ok") >= 1, name
    text = http.get(endpoints["controller"]["metrics_url"], timeout=10).text
    assert sample_value(text, "qkdn_controller_agents_connected") == 6
    assert sample_value(text, "qkdn_controller_netconf_rpc_seconds_count", node="0",
                        operation="get") >= 1
    assert sample_value(text, "qkdn_controller_sessions", state="active") == 0


def test_dead_node_is_restarted_with_its_identity(tmp_path):
    state = StateDir(tmp_path / "net")
    endpoints = bring_up(PAPER, state, timeout=90)
    try:
        before = network_status(state)["processes"]
        victim = next(row for row in before if row["name"] == "3")
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = next(r for r in network_status(state)["processes"] if r["name"] == "3")
            if row["restarts"] == 1 and row["alive"] and row["pid"] != victim["pid"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail("node 3 was not restarted")
        deadline = time.monotonic() + 30
        netconf = endpoints["nodes"]["3"]["netconf"]
        while True:  # same port, same qkdn_id once it serves again
            try:
                summary = fetch_summary(netconf)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert summary.qkdn_id == endpoints["nodes"]["3"]["qkdn_id"]
        assert "exited" in state.supervisor_log.read_text()
    finally:
        bring_down(state)
