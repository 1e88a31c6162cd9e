"""``qkdn up`` / ``down`` / ``status``: bring a topology up as separate OS processes on
loopback under one supervisor, wait until every element answers, and write the
``endpoints.json`` contract; stop it all again and leave nothing behind."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkdn.errors import QkdnError
from qkdn.state_files import StateDir, read_json, write_json_atomic
from qkdn.topology import Topology, load_topology

DEFAULT_HOST = "127.0.0.1"
DEFAULT_USERNAME = "qkdn"
READY_TIMEOUT_S = 60.0


class BringUpError(QkdnError):
    """The network could not be brought up or stopped; the message says which element."""


@dataclass(frozen=True)
class NodeProcessConfig:
    """What one node process needs to know (``DIR/nodes/<name>/node.json``)."""

    name: str
    qkdn_id: str
    state_dir: Path
    topology: Path
    netconf_host: str
    netconf_port: int
    username: str
    password: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "qkdn_id": self.qkdn_id, "state_dir": str(self.state_dir),
            "topology": str(self.topology),
            "netconf": {"host": self.netconf_host, "port": self.netconf_port,
                        "username": self.username, "password": self.password},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeProcessConfig:
        nc = data["netconf"]
        return cls(data["name"], data["qkdn_id"], Path(data["state_dir"]), Path(data["topology"]),
                   nc["host"], int(nc["port"]), nc["username"], nc["password"])

    @classmethod
    def load(cls, path: Path) -> NodeProcessConfig:
        return cls.from_json(read_json(path))


def prepare_state_dir(topology_path: Path, state: StateDir, *, host: str = DEFAULT_HOST,
                      username: str = DEFAULT_USERNAME, password: str | None = None) -> Topology:
    """Lay out ``state`` for ``topology_path``: the topology copy and every node's config.

    Durable state of an earlier run in the same folder (node identities, key stores) is kept.
    """
    topology = load_topology(topology_path)
    if supervisor_alive(state):
        raise BringUpError(f"a network is already running in {state.root} (qkdn down first)")
    state.root.mkdir(parents=True, exist_ok=True)
    os.chmod(state.root, 0o700)
    shutil.copyfile(topology_path, state.topology)
    password = password or secrets.token_urlsafe(16)
    for node in topology.nodes:
        config = NodeProcessConfig(node.name, node.qkdn_id, state.node_dir(node.name),
                                   state.topology, host, node.netconf_port, username, password)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state.node_config(node.name), config.to_json(), mode=0o600)
    return topology


def start_supervisor(state: StateDir) -> int:
    """Start the detached supervisor; it outlives this command. Returns its pid."""
    with open(state.supervisor_log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "qkdn.supervisor", "--state-dir", str(state.root)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    return process.pid


def wait_until_ready(state: StateDir, topology: Topology, *,
                     timeout: float = READY_TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Wait for every node's ready file and a NETCONF hello from its agent."""
    from qkdn.netconf_probe import probe_netconf

    deadline = time.monotonic() + timeout
    ready: dict[str, dict[str, Any]] = {}
    pending = [node.name for node in topology.nodes]
    while pending:
        if time.monotonic() > deadline:
            raise BringUpError(f"not ready after {timeout:.0f} s: nodes {', '.join(pending)} "
                               f"(see {state.root}/nodes/<name>/node.log)")
        if not supervisor_alive(state) and state.supervisor.exists():
            raise BringUpError(f"the supervisor exited; see {state.supervisor_log}")
        for name in list(pending):
            try:
                info = read_json(state.node_ready(name))
            except (OSError, ValueError):
                continue
            config = NodeProcessConfig.load(state.node_config(name))
            if probe_netconf(config.netconf_host, info["netconf_port"], config.username,
                             config.password):
                ready[name] = info
                pending.remove(name)
        time.sleep(0.05)
    return ready


def build_endpoints(state: StateDir, topology: Topology,
                    ready: dict[str, dict[str, Any]]) -> dict[str, Any]:
    nodes = {}
    for node in topology.nodes:
        config = NodeProcessConfig.load(state.node_config(node.name))
        nodes[node.name] = {
            "qkdn_id": node.qkdn_id,
            "netconf": {"host": config.netconf_host, "port": ready[node.name]["netconf_port"],
                        "username": config.username, "password": config.password},
        }
    return {"topology": topology.name, "state_dir": str(state.root), "nodes": nodes}


def bring_up(topology_path: Path, state: StateDir, *, timeout: float = READY_TIMEOUT_S,
             password: str | None = None) -> dict[str, Any]:
    topology = prepare_state_dir(topology_path, state, password=password)
    state.endpoints.unlink(missing_ok=True)
    start_supervisor(state)
    try:
        ready = wait_until_ready(state, topology, timeout=timeout)
    except BaseException:
        bring_down(state)
        raise
    endpoints = build_endpoints(state, topology, ready)
    write_json_atomic(state.endpoints, endpoints, mode=0o600)
    return endpoints


def supervisor_alive(state: StateDir) -> bool:
    table = _table(state)
    return bool(table) and table.get("state") != "stopped" and pid_alive(table.get("pid"))


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def bring_down(state: StateDir, *, timeout: float = 15.0) -> list[int]:
    """Stop the supervisor and every element; returns the pids that had to be killed."""
    table = _table(state)
    if not table:
        return []
    pids = [child["pid"] for child in table["children"].values() if child.get("pid")]
    supervisor_pid = table.get("pid")
    if pid_alive(supervisor_pid):
        os.kill(supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
            pid_alive(supervisor_pid) or any(pid_alive(p) for p in pids)):
        time.sleep(0.05)
    killed = []
    for pid in [supervisor_pid, *pids]:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def network_status(state: StateDir) -> dict[str, Any]:
    table = _table(state) or {}
    endpoints: dict[str, Any] = {}
    if state.endpoints.exists():
        endpoints = read_json(state.endpoints)
    rows = []
    for name, child in (table.get("children") or {}).items():
        node = endpoints.get("nodes", {}).get(name, {})
        netconf = node.get("netconf")
        rows.append({
            "name": name, "kind": child["kind"], "pid": child.get("pid"),
            "alive": pid_alive(child.get("pid")), "restarts": child.get("restarts", 0),
            "endpoint": f"netconf://{netconf['host']}:{netconf['port']}" if netconf else "",
        })
    return {"supervisor": {"pid": table.get("pid"), "alive": supervisor_alive(state),
                           "state": table.get("state", "absent")},
            "processes": rows}


def _table(state: StateDir) -> dict[str, Any] | None:
    try:
        return read_json(state.supervisor)
    except (OSError, ValueError):
        return None
