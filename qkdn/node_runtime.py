"""One node process (``qkdn node``): the QKD agent (NETCONF server) over the node's datastore,
with operational state drawn from the node's live objects, until SIGTERM.

The running configuration is durable: it is saved on every committed change to
``<node state dir>/running.json`` and reloaded on restart, together with the node's SSH host
key and NETCONF port, so a restarted node comes back with the same identity and state.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from qkdn.bringup import NodeProcessConfig
from qkdn.node_model import QKD_NODE, initial_node_config
from qkdn.state_files import read_json, write_json_atomic
from qkdn.topology import load_topology

log = logging.getLogger("qkdn.node")


class NodeRuntime:
    """The live objects of one node; a context manager that serves while open."""

    def __init__(self, config: NodeProcessConfig):
        self.config = config
        self.topology = load_topology(config.topology)
        self.started_at = time.time()
        self._stack = ExitStack()
        self.agent: Any = None
        self.datastore: Any = None

    @property
    def running_path(self) -> Path:
        return self.config.state_dir / "running.json"

    @property
    def ports_path(self) -> Path:
        return self.config.state_dir / "ports.json"

    def _initial_running(self) -> dict[str, Any]:
        if self.running_path.exists():
            log.info("restoring the running configuration from %s", self.running_path)
            return read_json(self.running_path)
        return initial_node_config(self.topology, self.config.name)

    def _netconf_port(self) -> int:
        if self.config.netconf_port:
            return self.config.netconf_port
        try:
            return int(read_json(self.ports_path)["netconf"])
        except (OSError, ValueError, KeyError):
            return 0

    def _save_running(self, _old: dict[str, Any], new: dict[str, Any]) -> None:
        write_json_atomic(self.running_path, new, mode=0o600)

    def operational_state(self) -> dict[str, Any]:
        """RFC 7951 JSON of the node's ``config false`` data right now."""
        running = self.datastore.running_json().get(QKD_NODE, {})
        interfaces = [{"qkdi_id": i["qkdi_id"], "qkdi_status": _types("ENABLED")}
                      for i in running.get("qkd_interfaces", {}).get("qkd_interface", [])]
        body: dict[str, Any] = {"qkdn_status": _types("OPERATING")}
        if interfaces:
            body["qkd_interfaces"] = {"qkd_interface": interfaces}
        return {QKD_NODE: body}

    def __enter__(self) -> NodeRuntime:
        from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
        from qkd_agent.datastore import Datastore
        from qkd_agent.yang_context import load_context

        try:
            ctx = load_context()
            self.datastore = Datastore(ctx, self._initial_running())
            self.datastore.add_listener(self._save_running)
            agent_config = AgentConfig(
                host=self.config.netconf_host, port=self._netconf_port(),
                username=self.config.username, password=self.config.password,
                host_key=self.config.state_dir / "ssh_host_key",
            )
            self.agent = QkdAgent(agent_config, self.datastore, self.operational_state, ctx=ctx)
            self._stack.enter_context(AgentThread(self.agent))
        except BaseException:
            self._stack.close()
            raise
        write_json_atomic(self.ports_path, {"netconf": self.agent.port})
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def _types(name: str) -> str:
    from qkdn.node_model import identity

    return identity(name)


def run_node(config_path: Path) -> int:
    config = NodeProcessConfig.load(config_path)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # one line per channel otherwise
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with NodeRuntime(config) as node:
        ready = config.state_dir / "ready.json"
        write_json_atomic(ready, {"pid": os.getpid(), "netconf_port": node.agent.port,
                                  "started_at": node.started_at})
        log.info("node %s serving NETCONF on %s:%d", config.name, config.netconf_host,
                 node.agent.port)
        stop.wait()
        log.info("node %s stopping", config.name)
        ready.unlink(missing_ok=True)
    return 0
