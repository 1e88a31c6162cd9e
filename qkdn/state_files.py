"""Files of a running network's state directory: where each lives and how it is written.

``DIR/`` holds ``topology.yaml`` (the copy the network runs from), ``endpoints.json`` (the
contract for clients), ``supervisor.json`` (live process table), ``supervisor.log``, and one
folder per node under ``DIR/nodes/<name>/`` with its ``node.json`` (process configuration),
``ready.json`` (written by the node once it serves), durable state and its log.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def topology(self) -> Path:
        return self.root / "topology.yaml"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def supervisor(self) -> Path:
        return self.root / "supervisor.json"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def network(self) -> Path:
        """How the network was brought up (e.g. whether a controller runs)."""
        return self.root / "network.json"

    @property
    def controller_dir(self) -> Path:
        return self.root / "controller"

    @property
    def controller_ready(self) -> Path:
        return self.controller_dir / "ready.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki.json"

    def link_seed(self, node: str, qkdl_id: str) -> Path:
        """The secret seed of ``node``'s QKD module on link ``qkdl_id`` (same at both ends)."""
        return self.node_dir(node) / "links" / f"{qkdl_id}.seed"

    def node_hold(self, name: str) -> Path:
        """While this file exists the supervisor keeps the node stopped (``qkdn fault``)."""
        return self.node_dir(name) / "held"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def node_config(self, name: str) -> Path:
        return self.node_dir(name) / "node.json"

    def node_ready(self, name: str) -> Path:
        return self.node_dir(name) / "ready.json"

    def node_log(self, name: str) -> Path:
        return self.node_dir(name) / "node.log"


def write_json_atomic(path: Path, data: Any, *, mode: int = 0o644, durable: bool = True,
                      compact: bool = False) -> None:
    """Write JSON so that readers see the old or the new file, never a partial one.

    ``durable=False`` skips the ``fsync``: the file still survives a crash of the process
    (the rename is atomic and the kernel holds the data), not an OS crash. ``compact`` writes
    it on one line (``json.dumps``' C encoder: ~7x less CPU than the indented form, which
    is encoded in Python)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            if compact:
                handle.write(json.dumps(data, sort_keys=True, separators=(",", ":")))
            else:
                json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    with open(path) as handle:
        return json.load(handle)
