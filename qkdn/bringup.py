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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms.pki import issue_network_pki
from qkdn.errors import QkdnError
from qkdn.process_liveness import pid_alive
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
    km_host: str = DEFAULT_HOST
    km_port: int = 0
    #: sessions are admitted and configured by the SDN controller (else: adjacent SAEs are
    #: served directly and multi-hop paths are provisioned by an operator over NETCONF)
    controller: bool = True

    @property
    def network_dir(self) -> Path:
        """The network's state directory (``DIR``), parent of every node's folder."""
        return self.topology.parent

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "qkdn_id": self.qkdn_id, "state_dir": str(self.state_dir),
            "topology": str(self.topology),
            "netconf": {"host": self.netconf_host, "port": self.netconf_port,
                        "username": self.username, "password": self.password},
            "km": {"host": self.km_host, "port": self.km_port},
            "controller": self.controller,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeProcessConfig:
        nc = data["netconf"]
        km = data.get("km", {})
        return cls(data["name"], data["qkdn_id"], Path(data["state_dir"]), Path(data["topology"]),
                   nc["host"], int(nc["port"]), nc["username"], nc["password"],
                   km.get("host", DEFAULT_HOST), int(km.get("port", 0)),
                   bool(data.get("controller", True)))

    @classmethod
    def load(cls, path: Path) -> NodeProcessConfig:
        return cls.from_json(read_json(path))


def prepare_state_dir(topology_path: Path, state: StateDir, *, host: str = DEFAULT_HOST,
                      username: str = DEFAULT_USERNAME, password: str | None = None,
                      controller: bool = True) -> Topology:
    """Lay out ``state`` for ``topology_path``: the topology copy, every node's config, the
    link seeds and the network's PKI.

    Durable state of an earlier run in the same folder (node identities, key stores) is kept.
    """
    topology = lay_out_state_dir(topology_path, state, controller=controller)
    write_node_inputs(state, topology, host=host, username=username, password=password,
                      controller=controller)
    return topology


def lay_out_state_dir(topology_path: Path, state: StateDir, *,
                      controller: bool = True) -> Topology:
    """The part of :func:`prepare_state_dir` a supervisor reads when it starts: the folder,
    the topology copy and ``network.json``. The nodes' own inputs
    (:func:`write_node_inputs`) may follow while the supervisor starts; ``pki.json``, written
    last, is removed here so that a supervisor never starts a node on the inputs of an
    earlier run (:func:`node_inputs_ready`)."""
    topology = load_topology(topology_path)
    if supervisor_alive(state):
        raise BringUpError(f"a network is already running in {state.root} (qkdn down first)")
    state.root.mkdir(parents=True, exist_ok=True)
    os.chmod(state.root, 0o700)
    shutil.copyfile(topology_path, state.topology)
    write_json_atomic(state.network, {"controller": controller})
    state.pki.unlink(missing_ok=True)
    return topology


def write_node_inputs(state: StateDir, topology: Topology, *, host: str = DEFAULT_HOST,
                      username: str = DEFAULT_USERNAME, password: str | None = None,
                      controller: bool = True) -> None:
    """Every node's config, the link seeds and the network's PKI; ``pki.json`` last (the
    supervisor starts nodes once it exists)."""
    password = password or secrets.token_urlsafe(16)
    for node in topology.nodes:
        # ports 0 = ephemeral: the node binds, records the port in its ports.json and keeps
        # it across restarts; KMs learn each other's relay URL from those files
        config = NodeProcessConfig(node.name, node.qkdn_id, state.node_dir(node.name),
                                   state.topology, host, node.netconf_port, username, password,
                                   host, node.km_port, controller)
        config.state_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(state.node_config(node.name), config.to_json(), mode=0o600)
    write_link_seeds(state, topology)
    pki = issue_network_pki(state.root, [n.name for n in topology.nodes],
                            {sae.sae_id: sae.node for sae in topology.saes})
    write_json_atomic(state.pki, pki, mode=0o600)


def node_inputs_ready(state: StateDir) -> bool:
    """True once :func:`write_node_inputs` has finished (``pki.json`` exists)."""
    return state.pki.exists()


def write_link_seeds(state: StateDir, topology: Topology) -> None:
    """Give both ends of every link the same secret seed for their emulated QKD modules.

    A seed that exists already is kept, so a restarted network continues the same key stream
    (the key stores know which blocks they have consumed).
    """
    for link in topology.links:
        paths = [state.link_seed(end, link.qkdl_id) for end in link.ends()]
        existing = next((p.read_bytes() for p in paths if p.exists()), None)
        seed = existing or secrets.token_hex(32).encode()
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(seed)


def start_supervisor(state: StateDir) -> int:
    """Start the detached supervisor; it outlives this command. Returns its pid."""
    from qkdn.fork_server import NO_BYTECODE_ENV, WRITE_BYTECODE

    env = None
    if WRITE_BYTECODE and NO_BYTECODE_ENV in os.environ:  # its own imports cached too
        env = {name: value for name, value in os.environ.items() if name != NO_BYTECODE_ENV}
    with open(state.supervisor_log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "qkdn.supervisor", "--state-dir", str(state.root)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env,
        )
    return process.pid


def load_netconf_client() -> None:
    """Import the NETCONF client of the readiness probes (ncclient, paramiko: ~0.15 s of CPU)
    now, while the supervisor preloads the node modules on the other core, rather than at
    the first probe, when the starting nodes need both cores."""
    import importlib

    for name in ("ncclient.manager", "ncclient.operations.errors", "ncclient.transport.errors"):
        importlib.import_module(name)


#: NETCONF readiness probes run at once (a large network's agents answer in parallel)
PROBE_WORKERS = 8


def wait_until_ready(state: StateDir, topology: Topology, *,
                     timeout: float = READY_TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Wait for every node's ready file and a NETCONF hello from its agent (probes of
    several nodes run in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    from qkdn.netconf_probe import probe_netconf

    deadline = time.monotonic() + timeout
    ready: dict[str, dict[str, Any]] = {}
    pending = [node.name for node in topology.nodes]

    def probe(name: str) -> dict[str, Any] | None:
        try:
            info = read_json(state.node_ready(name))
        except (OSError, ValueError):
            return None
        config = NodeProcessConfig.load(state.node_config(name))
        try:
            answered = probe_netconf(config.netconf_host, info["netconf_port"],
                                     config.username, config.password)
        except Exception:  # noqa: BLE001 - e.g. ncclient's SessionError on a slow hello
            answered = False
        return info if answered else None

    with ThreadPoolExecutor(max_workers=PROBE_WORKERS, thread_name_prefix="probe") as pool:
        while pending:
            if time.monotonic() > deadline:
                raise BringUpError(f"not ready after {timeout:.0f} s: nodes "
                                   f"{', '.join(pending)} (see {state.root}/nodes/<name>/node.log)")
            if not supervisor_alive(state) and state.supervisor.exists():
                raise BringUpError(f"the supervisor exited; see {state.supervisor_log}")
            for name, info in zip(list(pending), pool.map(probe, list(pending))):
                if info is not None:
                    ready[name] = info
                    pending.remove(name)
            time.sleep(0.05)
    return ready


def build_endpoints(state: StateDir, topology: Topology,
                    ready: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``endpoints.json`` contract (documented in docs/topology.md)."""
    pki = read_json(state.pki)
    nodes = {}
    for node in topology.nodes:
        config = NodeProcessConfig.load(state.node_config(node.name))
        km_url = f"https://{config.km_host}:{ready[node.name]['km_port']}"
        nodes[node.name] = {
            "qkdn_id": node.qkdn_id,
            "netconf": {"host": config.netconf_host, "port": ready[node.name]["netconf_port"],
                        "username": config.username, "password": config.password},
            "etsi014": f"{km_url}/api/v1/keys",
            "etsi004": f"{km_url}/api/v1/etsi004",
            "km": km_url,
        }
        if ready[node.name].get("metrics_port"):  # Prometheus /metrics of the node process
            nodes[node.name]["metrics_url"] = (f"http://{config.km_host}:"
                                               f"{ready[node.name]['metrics_port']}/metrics")
    return {"topology": topology.name, "state_dir": str(state.root), "nodes": nodes,
            "ca_cert": pki["ca_cert"], "saes": pki["saes"]}


def bring_up(topology_path: Path, state: StateDir, *, timeout: float = READY_TIMEOUT_S,
             password: str | None = None, controller: bool = True) -> dict[str, Any]:
    """Start the network; returns (and writes) ``endpoints.json`` once every element serves.

    The controller reads the nodes' part of ``endpoints.json`` to connect to the agents, so
    that part is written first; the controller's entry is added once it is connected."""
    started = time.monotonic()
    topology = lay_out_state_dir(topology_path, state, controller=controller)
    state.endpoints.unlink(missing_ok=True)
    state.controller_ready.unlink(missing_ok=True)
    # the supervisor starts (a fresh interpreter, then its preload of the node modules)
    # while the node configs, seeds and PKI are written: it starts nodes once pki.json exists
    supervisor = start_supervisor(state)
    try:
        write_node_inputs(state, topology, password=password, controller=controller)
        load_netconf_client()
        ready = wait_until_ready(state, topology, timeout=timeout)
        endpoints = build_endpoints(state, topology, ready)
        write_json_atomic(state.endpoints, endpoints, mode=0o600)
        if controller:
            left = max(1.0, timeout - (time.monotonic() - started))
            endpoints["controller"] = wait_for_controller(state, timeout=left)
            write_json_atomic(state.endpoints, endpoints, mode=0o600)
            left = max(1.0, timeout - (time.monotonic() - started))
            endpoints["orchestrator"] = wait_for_orchestrator(state, timeout=left)
            write_json_atomic(state.endpoints, endpoints, mode=0o600)
    except BaseException:
        bring_down(state)
        _stop_process(supervisor)   # one that had not written its table yet
        raise
    return endpoints


def _stop_process(pid: int, grace: float = 5.0) -> None:
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def wait_for_controller(state: StateDir, *, timeout: float) -> dict[str, Any]:
    """The controller's entry of endpoints.json, once it is connected to every agent."""
    def entry_of(info: dict[str, Any]) -> dict[str, Any]:
        entry = {"pid": info.get("pid"), "state_dir": str(state.controller_dir),
                 "log": str(state.controller_dir / "controller.log")}
        if "nbi" in info:  # the north-bound NETCONF server: host, port, credentials
            entry["nbi"] = info["nbi"]
        if info.get("metrics_port"):  # Prometheus /metrics of the controller process
            entry["metrics_url"] = f"http://{DEFAULT_HOST}:{info['metrics_port']}/metrics"
        return entry

    return _wait_for_ready(state, "the controller", state.controller_ready,
                           state.controller_dir / "controller.log", entry_of, timeout=timeout)


def wait_for_orchestrator(state: StateDir, *, timeout: float) -> dict[str, Any]:
    """The orchestrator's entry of endpoints.json (``url``, ``token_file``) once it serves."""
    def entry_of(info: dict[str, Any]) -> dict[str, Any]:
        entry = {"url": info["url"], "token_file": info["token_file"]}
        for optional in ("ca_cert", "operator_cert", "operator_key"):  # HTTPS only
            if optional in info:
                entry[optional] = info[optional]
        return entry

    ready = state.root / "orchestrator" / "ready.json"
    return _wait_for_ready(state, "the orchestrator", ready, ready.parent / "orchestrator.log",
                           entry_of, timeout=timeout)


def _wait_for_ready(state: StateDir, what: str, ready: Path, log_path: Path,
                    entry_of: Callable[[dict[str, Any]], dict[str, Any]], *,
                    timeout: float) -> dict[str, Any]:
    """Poll an element's ready file until ``entry_of`` makes its endpoints.json entry from
    it; fail after ``timeout`` or as soon as the supervisor is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return entry_of(read_json(ready))
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise BringUpError(f"{what} was not ready after {timeout:.0f} s (see {log_path})")
        if not supervisor_alive(state):
            raise BringUpError(f"the supervisor exited; see {state.supervisor_log}")
        time.sleep(0.05)


def supervisor_alive(state: StateDir) -> bool:
    table = _table(state)
    return bool(table) and table.get("state") != "stopped" and pid_alive(table.get("pid"))


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
