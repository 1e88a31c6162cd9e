"""Fault actions of the digital twin, as the orchestrator offers them: the twin's own API
(:func:`qkd_twin.faults.append_fault`) and the supervisor's node faults
(:func:`qkdn.supervisor.kill_node` / :func:`~qkdn.supervisor.restart_node`), applied to the
network's state directory. Names are checked against the network's topology first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import InvalidRequest, NotFound, NoTwin, OrchestratorError
from qkd_twin.errors import TwinError
from qkd_twin.faults import (
    DEFAULT_BLOCK_SECONDS,
    FaultKind,
    append_fault,
    fault_file,
    fault_state_at,
    read_faults,
)
from qkdn.errors import QkdnError
from qkdn.topology import Link, Topology, load_topology

LINK_ACTIONS = {kind.value: kind for kind in FaultKind}
NODE_ACTIONS = ("node-kill", "node-restart")


@dataclass(frozen=True)
class TwinFaults:
    """Fault injection into the twin of the network in ``state_dir``."""

    state_dir: Path

    def topology(self) -> Topology:
        path = self.state_dir / "topology.yaml"
        if not path.exists():
            raise NoTwin(f"{path} not found: no network in {self.state_dir}")
        try:
            return load_topology(path)
        except QkdnError as exc:
            raise NoTwin(f"cannot read the network's topology: {exc}") from exc

    def find_link(self, selector: dict[str, Any]) -> Link:
        topology = self.topology()
        if "qkdl_id" in selector:
            wanted = str(selector["qkdl_id"]).lower()
            for link in topology.links:
                if link.qkdl_id.lower() == wanted:
                    return link
            raise NotFound(f"no physical link {selector['qkdl_id']} in the topology")
        a, b = (str(n) for n in selector["nodes"])
        for link in topology.links:
            if {link.a, link.b} == {a, b}:
                return link
        raise NotFound(f"no physical link between nodes {a!r} and {b!r}")

    def link_state(self, link: Link, now: float | None = None) -> dict[str, Any]:
        records = read_faults(fault_file(self.state_dir, link.a, link.b))
        block = int((time.time() if now is None else now) // DEFAULT_BLOCK_SECONDS)
        state = fault_state_at(records, block)
        return {"qkdl_id": link.qkdl_id, "nodes": [link.a, link.b],
                "state": {"down": state.down, "extra_loss_db": state.extra_loss_db,
                          "eavesdrop_fraction": state.eavesdrop_fraction,
                          "nominal": state.nominal},
                "records": [r.to_json() for r in records[-20:]]}

    def all_links(self) -> list[dict[str, Any]]:
        try:
            return [self.link_state(link) for link in self.topology().links]
        except TwinError as exc:
            raise OrchestratorError(str(exc)) from exc

    def apply(self, action: dict[str, Any]) -> dict[str, Any]:
        """Carry out one validated ``FaultAction`` body; a description of what was done."""
        name = action["action"]
        if name in NODE_ACTIONS:
            return self._node_action(name, str(action["node"]))
        link = self.find_link(action["link"])
        kind = LINK_ACTIONS[name]
        value = action.get("value")
        try:
            record = append_fault(self.state_dir, link.a, link.b, kind,
                                  None if value is None else float(value))
        except TwinError as exc:
            raise InvalidRequest(str(exc)) from exc
        return {"action": name, "link": {"qkdl_id": link.qkdl_id, "nodes": [link.a, link.b]},
                "record": record.to_json(),
                "message": f"{name} on link {link.a}-{link.b} from block "
                           f"{record.effective_block}"}

    def _node_action(self, name: str, node: str) -> dict[str, Any]:
        if node not in {n.name for n in self.topology().nodes}:
            raise NotFound(f"no node {node!r} in the topology")
        from qkdn import supervisor

        action = supervisor.kill_node if name == "node-kill" else supervisor.restart_node
        try:
            message = action(self.state_dir, node)
        except QkdnError as exc:
            raise NotFound(str(exc)) from exc
        return {"action": name, "node": node, "message": message}
