"""``qkdn km serve`` processes for the integration and reliability runs: starting one with
its log, waiting until it is ready, and stopping a set of them. The spec a KM reads and a free
port come from :mod:`kms.process_network` (``serve_spec``, ``free_port``), which the KMS
benchmark uses too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
