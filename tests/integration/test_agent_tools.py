"""The agent driven by operators' tools as subprocesses: netconf-console2 and Debian's yangcli,
plus the ``qkdn agent`` command itself."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NETCONF_CONSOLE = Path(sys.executable).parent / "netconf-console2"
YANGCLI = shutil.which("yangcli") or "/usr/bin/yangcli"
NODE_ID = "11111111-1111-4111-8111-111111111111"
LINK_ID = "33333333-3333-4333-8333-333333333333"
PASSWORD = "tool-pw"


@pytest.fixture
def agent_port():
    """An agent that, like a node runtime, reports a link event whenever its config changes."""
    ctx = load_context()
    datastore = Datastore(ctx, {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": NODE_ID}})
    agent = QkdAgent(AgentConfig(password=PASSWORD), datastore,
                     lambda: {"etsi-qkd-sdn-node:qkd_node": {
                         "qkdn_status": "etsi-qkd-node-types:OPERATING"}}, ctx=ctx)

    def on_change(old: dict, new: dict) -> None:
        location = new["etsi-qkd-sdn-node:qkd_node"].get("qkdn_location_id", "")
        agent.notify({"etsi-qkd-sdn-node:sdqkdn_link_down": {
            "qkd_link": {"qkdl_id": LINK_ID, "reason": f"moved to {location}"}}})

    datastore.add_listener(on_change)
    with AgentThread(agent) as thread:
        yield thread.port


def netconf_console(port: int, *args: str, cwd: Path | None = None, ok: bool = True) -> str:
    result = subprocess.run(
        [str(NETCONF_CONSOLE), "--host", "127.0.0.1", "--port", str(port), "-u", "admin",
         "-p", PASSWORD, *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, check=False,
    )
    assert (result.returncode == 0) is ok, result.stderr
    return result.stdout


def yangcli(port: int, *args: str) -> str:
    result = subprocess.run(
        [YANGCLI, "--server=127.0.0.1", f"--ncport={port}", "--user=admin",
         f"--password={PASSWORD}", "--batch-mode", *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )
    return result.stdout + result.stderr


def split_messages(output: str) -> list[etree._Element]:
    docs = [d for d in output.split("<?xml version='1.0' encoding='UTF-8'?>") if d.strip()]
    return [etree.fromstring(d.strip().encode()) for d in docs]


@pytest.mark.skipif(not NETCONF_CONSOLE.exists(), reason="netconf-console2 not installed")
def test_netconf_console2_get_edit_and_notification(agent_port, tmp_path):
    config = netconf_console(agent_port, "--get-config")
    assert NODE_ID in config
    state = netconf_console(agent_port, "--get")
    assert "OPERATING" in state
    (tmp_path / "edit.xml").write_text(
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_id>{NODE_ID}</qkdn_id>'
        "<qkdn_location_id>lab-NC</qkdn_location_id></qkd_node>")
    out = netconf_console(agent_port, "--create-subscription", "--edit-config", "edit.xml",
                          "--sleep", "1", cwd=tmp_path)
    notes = [m for m in split_messages(out) if etree.QName(m).localname == "notification"]
    assert len(notes) == 1
    assert notes[0].findtext(f".//{{{ETSI_NODE_NS}}}reason") == "moved to lab-NC"
    assert "lab-NC" in netconf_console(agent_port, "--get-config")
    schema = netconf_console(agent_port, "--get-schema", "etsi-qkd-sdn-node")
    assert "module etsi-qkd-sdn-node" in schema


def test_netconf_console2_base10_framing(agent_port):
    out = netconf_console(agent_port, "-v", "1.0", "--get-config")
    assert NODE_ID in out


def test_netconf_console2_shows_rpc_error(agent_port, tmp_path):
    (tmp_path / "bad.xml").write_text(
        f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkdn_id>{NODE_ID}</qkdn_id>'
        "<qkd_applications><qkd_app><app_id>nope</app_id></qkd_app></qkd_applications></qkd_node>")
    out = netconf_console(agent_port, "--edit-config", "bad.xml", cwd=tmp_path, ok=False)
    assert "<error-tag>invalid-value</error-tag>" in out


@pytest.mark.skipif(not Path(YANGCLI).exists(), reason="yangcli not installed")
def test_yangcli_get_edit_and_notification(agent_port, tmp_path):
    out = yangcli(agent_port, "--run-command=xget /qkd_node")
    assert f"qkdn_id {NODE_ID}" in out and "OPERATING" in out
    out = yangcli(agent_port, "--run-command=merge /qkd_node/qkdn_location_id value=lab-Y")
    assert "RPC OK Reply" in out, out
    out = yangcli(agent_port, "--run-command=sget-config /qkd_node source=running")
    assert "qkdn_location_id lab-Y" in out
    script = tmp_path / "script"
    script.write_text("create-subscription\nmerge /qkd_node/qkdn_location_id value=lab-Z\n"
                      "xget /qkd_node\n")
    out = yangcli(agent_port, "--module=notifications", f"--run-script={script}")
    assert "Incoming notification" in out, out
    assert "reason 'moved to lab-Z'" in out, out
    out = yangcli(agent_port, "--run-command=create /qkd_node/qkd_applications/qkd_app -- "
                  "app_id=66666666-6666-4666-8666-666666666666 app_priority=4")
    assert "RPC OK Reply" in out, out
    out = yangcli(agent_port, "--run-command=xget-config /qkd_node/qkd_applications source=running")
    assert "app_priority 4" in out


def test_qkdn_agent_command(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), QKDN_AGENT_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qkdn.cli", "agent", "--port", "0", "--qkdn-id", NODE_ID,
         "--host-key", str(tmp_path / "hostkey")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("qkdn agent listening on 127.0.0.1:"), proc.stderr.read()
        port = int(line.split()[4].rsplit(":", 1)[1])
        assert NODE_ID in netconf_console(port, "--get-config")
        assert (tmp_path / "hostkey").stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_yangcli_with_candidate_needs_commit(tmp_path):
    ctx = load_context()
    datastore = Datastore(ctx, {"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": NODE_ID}})
    agent = QkdAgent(AgentConfig(password=PASSWORD, candidate=True), datastore, ctx=ctx)
    with AgentThread(agent) as thread:
        script = tmp_path / "script"
        script.write_text("merge /qkd_node/qkdn_location_id value=lab-K\ncommit\n")
        out = yangcli(thread.port, f"--run-script={script}")
        assert "Default target set to: <candidate>" in out, out
        assert datastore.running_json()["etsi-qkd-sdn-node:qkd_node"]["qkdn_location_id"] \
            == "lab-K"


def test_qkdn_agent_refuses_bad_node_id():
    env = dict(os.environ, PYTHONPATH=str(REPO), QKDN_AGENT_PASSWORD=PASSWORD)
    result = subprocess.run([sys.executable, "-m", "qkdn.cli", "agent", "--qkdn-id", "xyz"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 1 and "not a UUID" in result.stderr


def test_qkdn_agent_reports_bad_key_file_and_busy_port(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), QKDN_AGENT_PASSWORD=PASSWORD)
    (tmp_path / "hostkey").write_text("not a key")
    result = subprocess.run([sys.executable, "-m", "qkdn.cli", "agent", "--port", "0",
                             "--host-key", str(tmp_path / "hostkey")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 1 and "bad key file" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = subprocess.run([sys.executable, "-m", "qkdn.cli", "agent", "--port",
                                 str(busy.getsockname()[1])],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
                                check=False)
    assert result.returncode == 1 and "cannot start" in result.stderr
