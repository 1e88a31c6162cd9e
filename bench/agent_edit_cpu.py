"""Agent CPU per edit-config over real SSH, the controller's way, for one or several trees.

Starts the controller benchmark's relay agent (``bench.netconf_agent_process`` with node
``2`` of the 6-node line) in its own process, connects as the controller does
(``sdn_controller.southbound.connect_agent``: its default transport, libssh when installed,
or ``--transport``; ``sdn_controller.netconf_pipeline`` sends), and
sends ``--edits`` edit-configs (a 5-hop session's install and removal at the relay,
alternately, each awaited). Reports per edit-config the agent process's CPU
(``/proc/<pid>/stat`` utime + stime, its idle CPU over the same time subtracted), this
process's CPU (the client: paramiko, ncclient, the pipeline) and the wall-clock p50.

``--profile DIR`` writes the agent's cProfile (its event-loop thread) to ``DIR/relay.prof``.
``--tree DIR`` (repeatable) runs the agent from each source tree given (its
``PYTHONPATH``), in turn, ``--rounds`` times: main and a branch alternated in one go. The
client always runs from this tree.

    PYTHONPATH=. python -m bench.agent_edit_cpu [--edits 200] [--tree . --tree /tmp/main]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.agent_relay_edit_timing import RELAY
from bench.netconf_agent_process import stop as stop_agent
from bench.process_cpu import CLOCK_TICKS, process_cpu_s


def _user_system_s(pid: int) -> tuple[float, float]:
    """utime and stime of process ``pid`` (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def _relay_rpcs(edits: int) -> tuple[dict, list[str]]:
    from bench.controller_bench import _line
    from qkdn.node_model import initial_node_config
    from qkdn.topology import parse_topology
    from sdn_controller.config_payloads import session_config_payload, session_delete_payload
    from sdn_controller.link_metrics import LinkMetrics, LinkStatus
    from sdn_controller.routing import build_graph, route_session
    from sdn_controller.session_config import QoS, build_km_configs, token_bucket_for

    topo = parse_topology(_line(6))
    ids = {n.name: n.qkdn_id for n in topo.nodes}
    graph = build_graph([LinkMetrics(lk.qkdl_id, ids[lk.a], ids[lk.b], LinkStatus.ACTIVE,
                                     skr=10**6) for lk in topo.links])
    route = route_session(graph, ids["0"], ids["5"], 1000)
    payloads = []
    for n in range(edits // 2 + 1):
        configs = build_km_configs(
            session_id=f"00000000-0000-4000-8000-{n:012d}", generation=0, route=route,
            initiator=("sae-0", ids["0"]), responder=("sae-5", ids["5"]),
            qos=QoS(max_bps=1000, priority=1), priority=1, idle_timeout_s=60,
            bucket=token_bucket_for(1000, burst_s=2.0))
        (relay,) = [c for c in configs if c.node_id == ids[RELAY]]
        payloads += [session_config_payload(relay), session_delete_payload(relay)]
    return initial_node_config(topo, RELAY), payloads[:edits]


def run_once(tree: Path, edits: int, workdir: Path, profile: Path | None = None,
             transport: str = "auto") -> dict[str, float]:
    """One agent process from ``tree``: CPU per edit-config (agent, client) and wall p50."""
    from sdn_controller.netconf_pipeline import send_edit_config
    from sdn_controller.southbound import AgentEndpoint, SouthboundConfig, connect_agent

    initial, payloads = _relay_rpcs(edits)
    spec = workdir / "relay.json"
    spec.write_text(json.dumps({"initial": initial, "password": "bench-pw",
                                "host_key": str(workdir / "relay.key"), "links": []}))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("QKDN_BENCH_AGENT_PROFILE", None)
    if profile is not None:  # the agent's event-loop thread under cProfile (CPU doubles)
        env["QKDN_BENCH_AGENT_PROFILE"] = str(profile)
    proc = subprocess.Popen([sys.executable, "-m", "bench.netconf_agent_process", str(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            bufsize=1, env=env, cwd=tree)
    try:
        first = (proc.stdout.readline() if proc.stdout else "").split()
        if first[:1] != ["port"]:
            raise RuntimeError("the agent did not start")
        # the agent reports every commit on its stdout: read it all, or after ~2,000 edits
        # the pipe is full and the agent blocks (a line per edit: a few µs of this process)
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
        # as the controller's sessions: its transport, subscribed (and so the reply listener)
        m = connect_agent(AgentEndpoint("relay", "127.0.0.1", int(first[1]), "admin",
                                        "bench-pw"), SouthboundConfig(transport=transport))
        try:
            for payload in payloads[:20]:  # warm-up
                send_edit_config(m._session, "relay", payload).wait()
            time.sleep(0.3)
            idle0, t0 = process_cpu_s(proc.pid), time.perf_counter()
            time.sleep(0.5)
            idle_per_s = (process_cpu_s(proc.pid) - idle0) / (time.perf_counter() - t0)
            walls = []
            agent0, client0 = process_cpu_s(proc.pid), time.process_time()
            split0 = _user_system_s(proc.pid)
            started = time.perf_counter()
            for payload in payloads:
                t = time.perf_counter()
                send_edit_config(m._session, "relay", payload).wait()
                walls.append((time.perf_counter() - t) * 1000)
            elapsed = time.perf_counter() - started
            agent_s = process_cpu_s(proc.pid) - agent0 - idle_per_s * elapsed
            system_s = _user_system_s(proc.pid)[1] - split0[1]
            client_s = time.process_time() - client0
        finally:
            m.close_session()
    finally:
        stop_agent(proc)
    n = len(payloads)
    return {"agent_cpu_ms": agent_s * 1000 / n, "agent_system_ms": system_s * 1000 / n,
            "client_cpu_ms": client_s * 1000 / n,
            "wall_p50_ms": statistics.median(walls)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tree", action="append", type=Path)
    parser.add_argument("--transport", default="auto",
                        help="the client's SSH: auto (the controller's default), libssh, "
                             "paramiko")
    parser.add_argument("--profile", type=Path,
                        help="write the agent's cProfile to DIR/relay.prof (last run)")
    args = parser.parse_args()
    trees = args.tree or [Path.cwd()]
    for _ in range(args.rounds):
        for tree in trees:
            with tempfile.TemporaryDirectory() as tmp:
                result = run_once(tree.resolve(), args.edits, Path(tmp), args.profile,
                                  args.transport)
            print(f"{tree!s:28s} agent {result['agent_cpu_ms']:.3f} ms (kernel "
                  f"{result['agent_system_ms']:.3f}), client "
                  f"{result['client_cpu_ms']:.3f} ms CPU per edit-config, wall p50 "
                  f"{result['wall_p50_ms']:.2f} ms (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
