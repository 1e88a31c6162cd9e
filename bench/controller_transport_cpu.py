"""Controller-side CPU per edit-config round trip, per NETCONF transport, against one agent.

Starts the controller benchmark's relay agent (``bench.netconf_agent_process``, as
``bench.agent_edit_cpu`` does) once, then for each round and each transport named opens a
session the way the controller's south-bound does (``sdn_controller.southbound.connect_agent``:
create-subscription first, so the reply listener exists), sends ``--edits`` edit-configs one
after the other (a 5-hop session's install and removal at the relay, serialised beforehand, each
awaited, through
``sdn_controller.netconf_pipeline``) and reports this process's CPU per edit-config
(``time.process_time``: the transport, ncclient, the pipeline), the agent's CPU per
edit-config (``/proc``) and the wall-clock p50. Transports alternate within each round, so
both see the same machine load.

    PYTHONPATH=. python -m bench.controller_transport_cpu [--edits 2000] [--rounds 3]
        [--transport paramiko --transport libssh]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from bench.agent_edit_cpu import _relay_rpcs
from bench.netconf_agent_process import stop as stop_agent
from bench.process_cpu import process_cpu_s


def measure(transport: str, port: int, agent_pid: int, payloads: list) -> dict[str, float]:
    """``len(payloads)`` edit-configs over a fresh session of ``transport``."""
    from sdn_controller.netconf_pipeline import send_edit_config
    from sdn_controller.southbound import (
        AgentEndpoint,
        SouthboundConfig,
        connect_agent,
    )

    endpoint = AgentEndpoint("relay", "127.0.0.1", port, "admin", "bench-pw")
    m = connect_agent(endpoint, SouthboundConfig(transport=transport))
    try:
        for payload in payloads[:40]:   # warm-up
            send_edit_config(m._session, "relay", payload).wait()
        walls = []
        agent0, client0 = process_cpu_s(agent_pid), time.process_time()
        for payload in payloads:
            t = time.perf_counter()
            send_edit_config(m._session, "relay", payload).wait()
            walls.append((time.perf_counter() - t) * 1000)
        client_s = time.process_time() - client0
        agent_s = process_cpu_s(agent_pid) - agent0
    finally:
        m.close_session()
    n = len(payloads)
    return {"client_cpu_ms": client_s * 1000 / n, "agent_cpu_ms": agent_s * 1000 / n,
            "wall_p50_ms": statistics.median(walls)}


def _wait_for_port(out_path: Path, proc: subprocess.Popen, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        first = out_path.read_text().split("\n", 1)
        if len(first) == 2 and first[0].startswith("port "):
            return int(first[0].split()[1])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("the agent did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transport", action="append",
                        help="paramiko, libssh (default: both, alternated)")
    args = parser.parse_args()
    transports = args.transport or ["paramiko", "libssh"]
    initial, elements = _relay_rpcs(args.edits)
    # serialised once, as the controller sends a set-up's payloads (text): what is measured
    # is the round trip, not lxml
    payloads = [etree.tostring(element, encoding="unicode") for element in elements]
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "relay.json"
        spec.write_text(json.dumps({"initial": initial, "password": "bench-pw",
                                    "host_key": str(Path(tmp) / "relay.key"), "links": []}))
        # the agent prints a line per commit: into a file, so that no thread of this
        # process reads them (this process's CPU is then the client's alone)
        out_path = Path(tmp) / "relay.out"
        with out_path.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "bench.netconf_agent_process",
                                     str(spec)], stdin=subprocess.PIPE, stdout=out, text=True)
        try:
            port = _wait_for_port(out_path, proc)
            for _ in range(args.rounds):
                for transport in transports:
                    result = measure(transport, port, proc.pid, payloads)
                    print(f"{transport:9s} client {result['client_cpu_ms']:.3f} ms CPU per "
                          f"edit-config, agent {result['agent_cpu_ms']:.3f} ms, wall p50 "
                          f"{result['wall_p50_ms']:.3f} ms (load {os.getloadavg()[0]:.1f})",
                          flush=True)
        finally:
            stop_agent(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
