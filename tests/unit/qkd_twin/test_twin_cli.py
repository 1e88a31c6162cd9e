"""``qkdn twin`` and ``qkdn fault`` commands, in-process."""

from __future__ import annotations

import argparse
import json
import threading
import time

import pytest

from qkd_twin.cli import add_commands
from qkd_twin.faults import fault_file, read_faults
from qkd_twin.module import (
    LinkEventKind,
    LinkRole,
    LinkStatus,
    ModuleConfig,
    ModuleMode,
    QkdModule,
)
from qkd_twin.physics import preset


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="qkdn")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_twin_cli_keyrate_json(capsys):
    assert run(["twin", "keyrate", "--length-km", "50", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"skr_bps", "qber", "mu", "plob_bps"}
    assert data["skr_bps"] == pytest.approx(1.28e6, rel=0.02)
    assert data["qber"] == pytest.approx(0.0101, rel=0.02)


def test_twin_cli_keyrate_overrides_and_text(capsys):
    assert run(["twin", "keyrate", "--length-km", "10", "--preset", "gys"]) == 0
    out = capsys.readouterr().out
    assert "kbit/s" in out and "PLOB" in out
    assert run(["twin", "keyrate", "--length-km", "10", "--preset", "gys", "--eta-bob",
                "0.09", "--json"]) == 0
    faster = json.loads(capsys.readouterr().out)["skr_bps"]
    assert faster > 3.1e3 * 1.5
    assert run(["twin", "keyrate", "--length-km", "10", "--e-d", "0.7"]) == 2
    assert "e_d" in capsys.readouterr().err


def test_twin_cli_sweep_and_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "rate.png"
    assert run(["twin", "keyrate", "--sweep", "--from-km", "0", "--to-km", "200",
                "--step-km", "50", "--json", "--plot", str(png)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["length_km"] for r in rows] == [0, 50, 100, 150, 200]
    assert rows[0]["plob_bps"] is None and rows[-1]["skr_bps"] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_twin_cli_postprocess(capsys):
    assert run(["twin", "postprocess", "--qber", "0.03", "--bits", "40000", "--frame-bits",
                "20000", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"efficiency", "throughput_bps", "leaked_bits", "final_key_bits",
                         "frame_errors"}
    assert 1.0 < data["efficiency"] < 1.2 and data["frame_errors"] == 0
    assert 0 < data["final_key_bits"] < 40000 and data["throughput_bps"] > 0
    assert run(["twin", "postprocess", "--qber", "0.7", "--bits", "4000"]) == 2


def network_dir(tmp_path):
    (tmp_path / "endpoints.json").write_text(json.dumps({"nodes": {"A": {}, "B": {}}}))
    return tmp_path


def test_twin_cli_fault_writes_records(capsys, tmp_path):
    state = network_dir(tmp_path)
    assert run(["fault", "--state-dir", str(state), "eavesdrop", "B", "A", "0.25",
                "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["kind"] == "eavesdrop" and record["value"] == 0.25
    assert run(["fault", "--state-dir", str(state), "loss", "A", "B", "3"]) == 0
    assert run(["fault", "--state-dir", str(state), "link-down", "A", "B"]) == 0
    assert [r.kind.value for r in read_faults(fault_file(state, "A", "B"))] == [
        "eavesdrop", "loss", "link-down"]
    capsys.readouterr()
    assert run(["fault", "--state-dir", str(state), "show", "A", "B"]) == 0
    shown = json.loads(capsys.readouterr().out)["state"]
    assert shown == {"down": True, "extra_loss_db": 3.0, "eavesdrop_fraction": 0.25}


def test_twin_cli_fault_errors(capsys, tmp_path):
    assert run(["fault", "--state-dir", str(tmp_path / "none"), "link-down", "A", "B"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(["fault", "--state-dir", str(tmp_path), "link-down", "A", "B"]) == 2
    assert "endpoints.json" in capsys.readouterr().err
    state = network_dir(tmp_path)
    assert run(["fault", "--state-dir", str(state), "link-down", "A", "Z"]) == 2
    assert "unknown node" in capsys.readouterr().err
    assert run(["fault", "--state-dir", str(state), "eavesdrop", "A", "B", "2"]) == 2
    assert "fraction" in capsys.readouterr().err
    (state / "endpoints.json").write_text(json.dumps({"nodes": {"A": {}, "B": {}, "C": {}}}))
    (state / "topology.yaml").write_text("links:\n  - {a: A, b: B, length_km: 5}\n")
    assert run(["fault", "--state-dir", str(state), "link-down", "A", "C"]) == 2
    assert "no physical link between A and C" in capsys.readouterr().err
    assert run(["fault", "--state-dir", str(state), "link-down", "B", "A"]) == 0


def test_twin_cli_fault_reaches_both_running_ends(tmp_path):
    """Two module threads (both ends) watch the fault file the CLI writes."""
    state = network_dir(tmp_path)
    seen: dict[LinkRole, list[tuple[float, LinkEventKind]]] = {r: [] for r in LinkRole}
    keys: dict[LinkRole, dict[int, bytes]] = {r: {} for r in LinkRole}
    lock = threading.Lock()

    class Sink:
        def __init__(self, role):
            self.role = role

        def deliver(self, qkdl_id, block_index, key):
            with lock:
                keys[self.role][block_index] = key

    modules = []
    for role in LinkRole:
        cfg = ModuleConfig("l-ab", role, preset("reference", 20), b"s33d", ModuleMode.RATE,
                           fault_path=fault_file(state, "A", "B"))
        module = QkdModule(cfg, Sink(role))
        module.add_listener(lambda e, role=role: seen[role].append((time.monotonic(), e.kind)))
        modules.append(module)
        module.start()
    try:
        time.sleep(0.6)
        cut_at = time.monotonic()
        assert run(["fault", "--state-dir", str(state), "link-down", "A", "B"]) == 0
        deadline = cut_at + 30.0
        while time.monotonic() < deadline and not all(
                any(k is LinkEventKind.LINK_DOWN for _, k in seen[r]) for r in LinkRole):
            time.sleep(0.02)
        for role in LinkRole:   # how fast: the benchmark's network.fault_to_notification_s
            assert any(k is LinkEventKind.LINK_DOWN and t >= cut_at for t, k in seen[role])
        assert all(m.state.status is LinkStatus.PASSIVE for m in modules)
        time.sleep(0.3)
        with lock:
            last = {r: max(keys[r]) for r in LinkRole}
        time.sleep(0.5)
        with lock:
            assert all(max(keys[r]) == last[r] for r in LinkRole)  # key flow stopped
            common = set(keys[LinkRole.TRANSMITTER]) & set(keys[LinkRole.RECEIVER])
            assert common and all(keys[LinkRole.TRANSMITTER][n] == keys[LinkRole.RECEIVER][n]
                                  for n in common)
    finally:
        for module in modules:
            module.stop()


def test_twin_cli_node_fault_seam(capsys, tmp_path, monkeypatch):
    import sys
    import types

    from qkd_twin import cli
    state = network_dir(tmp_path)
    monkeypatch.setitem(cli.NODE_FAULT_HOOKS, "node-kill", ("qkd_twin_no_such", "kill_node"))
    assert run(["fault", "--state-dir", str(state), "node-kill", "A"]) == 2
    assert "qkd_twin_no_such.kill_node" in capsys.readouterr().err
    calls = []
    fake = types.ModuleType("qkd_twin_fake_supervisor")
    fake.restart_node = lambda state_dir, node: calls.append((state_dir, node)) or "restarted"
    monkeypatch.setitem(sys.modules, "qkd_twin_fake_supervisor", fake)
    monkeypatch.setitem(cli.NODE_FAULT_HOOKS, "node-restart",
                        ("qkd_twin_fake_supervisor", "restart_node"))
    assert run(["fault", "--state-dir", str(state), "node-restart", "B"]) == 0
    assert calls == [(state, "B")] and "restarted" in capsys.readouterr().out
    assert run(["fault", "--state-dir", str(state), "node-restart", "Q"]) == 2
    from qkdn.errors import QkdnError

    def refuse(state_dir, node):
        raise QkdnError(f"no element named {node!r}")
    fake.restart_node = refuse
    assert run(["fault", "--state-dir", str(state), "node-restart", "A"]) == 2
    assert "no element named 'A'" in capsys.readouterr().err
