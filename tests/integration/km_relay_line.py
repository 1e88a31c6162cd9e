"""Three ``qkdn km serve`` processes A–B–C on loopback with one relayed session configured
(B relays, ``sae-a`` at A, ``sae-c`` at C), as the controller would push it; started, killed
with SIGKILL and restarted at will. Used by the crash tests (integration and reliability)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from kms.local_network import node_qkdn_id, virtual_link
from kms.pki import issue_network_pki
from kms.process_network import free_port, serve_spec

from .km_serve import launch_km, stop_all, wait_ready

NODES = ["A", "B", "C"]
LINKS = [("A", "B"), ("B", "C")]
SAES = {"sae-a": "A", "sae-c": "C"}
SESSION = "11111111-2222-4333-8444-555555555555"
VIRT = "99999999-2222-4333-8444-555555555555"
HOPS = {"A": (None, "B"), "B": ("A", "C"), "C": ("B", None)}


def running_config(node: str) -> dict:
    """The session's configuration on ``node``: the VIRT link (forwarding rule) and, at the
    ends, the qkd_app; what the controller would push."""
    prev, nxt = HOPS[node]
    link = virtual_link(VIRT, SESSION, prev, nxt)
    body: dict[str, Any] = {"qkdn_id": node_qkdn_id(node), "qkd_links": {"qkd_link": [link]}}
    if node != "B":
        body["qkd_applications"] = {"qkd_app": [{
            "app_id": SESSION, "server_app_id": "sae-a", "client_app_id": ["sae-c"],
            "backing_qkdl_id": [VIRT]}]}
    return {"etsi-qkd-sdn-node:qkd_node": body}


class KmProcesses:
    """The three KM processes (``python -m kms.cli km serve``), started and killed at will.
    Each feeds ``blocks`` blocks of ``block_size`` bytes per link; node N logs to
    ``workdir/N.log`` (appended to on a restart)."""

    def __init__(self, workdir: Path, blocks: int, block_size: int,
                 settings: dict | None = None) -> None:
        self.workdir = workdir
        #: extra ``km serve`` spec settings of every KM (e.g. ``tombstone_retention_s``)
        self.settings = dict(settings or {})
        self.blocks, self.block_size = blocks, block_size
        self.pki = issue_network_pki(workdir, NODES, SAES)
        self.ports = {n: free_port() for n in NODES}
        self.urls = {n: f"https://127.0.0.1:{p}" for n, p in self.ports.items()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts: Counter[str] = Counter()

    def state_dir(self, node: str) -> Path:
        return self.workdir / node

    def log_path(self, node: str) -> Path:
        return self.workdir / f"{node}.log"

    def spec(self, node: str, fault_delays: dict[str, float] | None = None) -> dict:
        """``node``'s spec; ``fault_delays`` makes the KM pause at named points (relay
        tests)."""
        spec = {**serve_spec(node, NODES, LINKS, SAES, self.urls, self.pki, self.state_dir(node),
                          self.ports[node], blocks=self.blocks, block_size=self.block_size),
                "running": running_config(node), "resolve_interval_s": 0.3, "relay_batch": 1,
                **self.settings}
        if fault_delays:
            spec["fault_delays"] = fault_delays
        return spec

    def start(self, node: str, fault_delays: dict[str, float] | None = None,
              timeout: float = 60) -> None:
        """Start ``node``'s KM and wait until it is ready."""
        log_path = self.log_path(node)
        offset = log_path.stat().st_size if log_path.exists() else 0
        self.procs[node] = launch_km(self.spec(node, fault_delays),
                                     self.workdir / f"{node}.spec.json", log_path, append=True)
        self.starts[node] += 1
        wait_ready(self.procs[node], log_path, offset=offset, timeout=timeout)

    def kill9(self, node: str) -> None:
        proc = self.procs[node]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        stop_all(self.procs.values())

    def client(self, sae: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        entry = self.pki["saes"][sae]
        session.cert, session.verify = (entry["cert"], entry["key"]), self.pki["ca_cert"]
        return session

    def keys_in_db(self, node: str, state: str) -> set[str]:
        """The key_IDs in ``node``'s key store that are in ``state`` (pending, ready, ...)."""
        conn = sqlite3.connect(str(self.state_dir(node) / "km" / "keys.sqlite"))
        try:
            return {r[0] for r in conn.execute("SELECT key_id FROM keys WHERE state=?",
                                               (state,))}
        finally:
            conn.close()
