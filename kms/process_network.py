"""A network of KMs on loopback, **one OS process per KM**, as ``qkdn up`` runs one process per
node: for benchmarks that must measure the deployment, not one shared interpreter.

``KmProcessNetwork(tmp, nodes, links, saes, km_settings={...}, blocks=120, block_size=65536)``
issues the PKI, gives every KM a free port, writes one ``km serve`` spec per node (identity,
TLS files, directory with its neighbours' relay URLs, a deterministic feed of ``blocks``
identical blocks per link: the same :func:`kms.local_network.test_block` stream
:class:`~kms.local_network.LocalKmNetwork` feeds) and starts ``python -m kms.cli km serve``
for each, then waits until each has said it is ready. The caller (a benchmark's clients)
stays in its own process. :meth:`cpu_s` reads a KM process's user + system CPU from
``/proc``. In-process KMs (:class:`~kms.local_network.LocalKmNetwork`) remain the tool for
tests that reach into a KM.

Each process logs at INFO to ``<tmp>/<node>.log`` (``python -m kms.cli``), as a node process
logs to its element log; the spec is ``<tmp>/<node>.spec.json``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from kms.local_network import directory_for, node_qkdn_id
from kms.pki import NetworkPkiFiles, issue_network_pki

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the KM binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_spec(node: str, nodes: Sequence[str], links: Sequence[tuple[str, str]],
               saes: Mapping[str, str], urls: Mapping[str, str], pki: dict,
               state_dir: Path, port: int, *, blocks: int, block_size: int,
               km_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``km serve`` spec of ``node`` (pure): identity, TLS files from ``pki``, its
    directory of SAEs, links and peers' URLs, a feed of ``blocks`` blocks of ``block_size``
    bytes per link, and ``km_settings`` (spec keys ``km serve`` reads: ``relay_batch``,
    ``reserve_batch``, ``relay_ahead_low_water``, ...)."""
    d = directory_for(node, list(nodes), list(links), dict(saes), dict(urls))
    km = pki["kms"][node]
    return {
        "node": node, "qkdn_id": node_qkdn_id(node), "state_dir": str(state_dir), "port": port,
        "tls": {"cert": km["cert"], "key": km["key"], "ca": pki["ca_cert"]},
        "directory": {"saes": dict(d.saes), "links": dict(d.links),
                      "nodes": {n: {"qkdn_id": e.qkdn_id, "relay_url": e.relay_url}
                                for n, e in d.nodes.items()}},
        "feed": {q: {"blocks": blocks, "size": block_size} for q in d.links.values()},
        **dict(km_settings or {}),
    }


class KmProcessNetwork(NetworkPkiFiles):
    """Start/stop one ``km serve`` process per node; context manager."""

    def __init__(self, state_dir: Path, nodes: Sequence[str], links: Sequence[tuple[str, str]],
                 saes: Mapping[str, str], *, km_settings: Mapping[str, Any] | None = None,
                 blocks: int = 40, block_size: int = 65536, ready_timeout_s: float = 120) -> None:
        self.state_dir = Path(state_dir)
        self.nodes, self.links, self.saes = list(nodes), list(links), dict(saes)
        self.km_settings = dict(km_settings or {})
        self.blocks, self.block_size = blocks, block_size
        self.ready_timeout_s = ready_timeout_s
        self.pki = issue_network_pki(self.state_dir, self.nodes, self.saes)
        self.ports = {n: free_port() for n in self.nodes}
        self.urls = {n: f"https://127.0.0.1:{p}" for n, p in self.ports.items()}
        self.processes: dict[str, subprocess.Popen] = {}

    def log_path(self, node: str) -> Path:
        return self.state_dir / f"{node}.log"

    def start(self) -> Self:
        for node in self.nodes:
            spec = serve_spec(node, self.nodes, self.links, self.saes, self.urls, self.pki,
                              self.state_dir / "nodes" / node, self.ports[node],
                              blocks=self.blocks, block_size=self.block_size,
                              km_settings=self.km_settings)
            spec_path = self.state_dir / f"{node}.spec.json"
            spec_path.write_text(json.dumps(spec))
            with open(self.log_path(node), "w") as out:
                self.processes[node] = subprocess.Popen(
                    [sys.executable, "-m", "kms.cli", "km", "serve", "--spec", str(spec_path)],
                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            for node in self.nodes:
                self._wait_ready(node)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, node: str) -> None:
        proc, log_path = self.processes[node], self.log_path(node)
        deadline = time.monotonic() + self.ready_timeout_s
        while '"ready": true' not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                state = "exited" if proc.poll() is not None else "not ready in time"
                raise RuntimeError(f"km serve {node} {state}: "
                                   f"{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def pid(self, node: str) -> int:
        return self.processes[node].pid

    def cpu_s(self, node: str) -> float:
        """User + system CPU seconds the KM process of ``node`` has used so far."""
        try:
            stat = Path(f"/proc/{self.pid(node)}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        """SIGTERM every KM (it settles its reservations and closes its stores), then wait;
        kill what is left after 15 s."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
