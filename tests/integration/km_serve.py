"""``qkdn km serve`` processes for the integration and reliability runs: a free port, the
spec a KM reads, starting one with its log, waiting until it is ready, and stopping a set of
them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kms.local_network import directory_for, node_qkdn_id

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def km_spec(node: str, nodes: Sequence[str], links: Sequence[tuple[str, str]],
            saes: Mapping[str, str], urls: Mapping[str, str], pki: dict, state_dir: Path,
            port: int, *, blocks: int, block_size: int) -> dict[str, Any]:
    """The spec of ``km serve`` for ``node``: identity, TLS files from ``pki``, its directory
    of SAEs, links and peers, and a feed of ``blocks`` blocks of ``block_size`` bytes per link."""
    d = directory_for(node, list(nodes), list(links), dict(saes), dict(urls))
    km = pki["kms"][node]
    return {
        "node": node, "qkdn_id": node_qkdn_id(node), "state_dir": str(state_dir), "port": port,
        "tls": {"cert": km["cert"], "key": km["key"], "ca": pki["ca_cert"]},
        "directory": {"saes": dict(d.saes), "links": dict(d.links),
                      "nodes": {n: {"qkdn_id": e.qkdn_id, "relay_url": e.relay_url}
                                for n, e in d.nodes.items()}},
        "feed": {q: {"blocks": blocks, "size": block_size} for q in d.links.values()},
    }


def launch_km(spec: dict, spec_path: Path, log_path: Path, *, append: bool) -> subprocess.Popen:
    """Write ``spec`` to ``spec_path`` and start ``km serve`` on it, output to ``log_path``."""
    spec_path.write_text(json.dumps(spec))
    with open(log_path, "a" if append else "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kms.cli", "km", "serve", "--spec", str(spec_path)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_ready(proc: subprocess.Popen, log_path: Path, *, offset: int = 0,
               timeout: float = 60, interval: float = 0.05) -> None:
    """Wait until ``km serve`` has written ``"ready": true`` to ``log_path`` (after byte
    ``offset``, for a log a restart appends to); RuntimeError with the log's tail if the
    process exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with open(log_path) as log:
            log.seek(offset)
            if '"ready": true' in log.read():
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            state = "exited" if proc.poll() is not None else f"not ready within {timeout} s"
            raise RuntimeError(f"km serve {state}: {log_path.read_text()[-2000:]}")
        time.sleep(interval)


def stop_all(procs: Iterable[subprocess.Popen]) -> None:
    """SIGTERM every running process, then wait (10 s each) and kill what is left."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
