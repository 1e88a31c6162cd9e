"""One NETCONF agent in its own process for the controller benchmark.

``python -m bench.netconf_agent_process CONFIG.json`` where the file holds ``{"initial":
<RFC 7951 qkd_node>, "password": ..., "host_key": ..., "links": [qkdl_id...]}``. Prints
``port <n>`` once listening, then one line ``apps <json list of app_ids>`` after every
committed change of the datastore; with ``"timeline": true`` in the file also
``tl <perf_counter> committed`` at every commit and ``tl <perf_counter> <operation> <seconds>``
after every answered RPC (``perf_counter`` is CLOCK_MONOTONIC: comparable across processes).
Reads commands from stdin, one JSON object per line:
``{"notify": <notification body>}`` or ``{"link": [qkdl_id, "ACTIVE"|"OFF"]}``.

Profiling switch: with ``QKDN_BENCH_AGENT_PROFILE=DIR`` in the environment the agent's event
loop thread (where every RPC is parsed, applied, validated and answered) runs under cProfile,
dumped to ``DIR/<spec name>.prof`` when stdin closes (``python -m pstats`` reads it).
"""

from __future__ import annotations

import cProfile
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context

PROFILE_ENV = "QKDN_BENCH_AGENT_PROFILE"

T = "etsi-qkd-node-types:"
NODE = "etsi-qkd-sdn-node:qkd_node"


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """End an agent started as ``python -m bench.netconf_agent_process``: its stdin closed
    (it then exits), killed if it has not after ``timeout_s``."""
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(path: str) -> int:
    spec = json.loads(Path(path).read_text())
    ctx = load_context()
    store = Datastore(ctx, spec["initial"])
    live = {link: "ACTIVE" for link in spec["links"]}
    out_lock = threading.Lock()
    sys.stdout.flush()
    out_fd = sys.stdout.fileno()

    def emit(line: str) -> None:
        # straight to write(2) (no text wrapper, no buffer to flush): one call for the
        # whole line unless the pipe takes only part of it; the lock keeps lines whole
        data = memoryview((line + "\n").encode())
        with out_lock:
            while data:
                data = data[os.write(out_fd, data):]

    timeline = bool(spec.get("timeline"))

    def on_change(old: dict, new: dict) -> None:
        if timeline:
            emit(f"tl {time.perf_counter():.6f} committed")
        apps = new.get(NODE, {}).get("qkd_applications", {}).get("qkd_app", [])
        # json.dumps of the sorted ids, written directly: an app_id is a yang:uuid (hex
        # digits and dashes, validated before any commit), so nothing needs escaping
        ids = sorted(a["app_id"] for a in apps)
        emit('apps ["' + '", "'.join(ids) + '"]' if ids else "apps []")

    def on_rpc(operation: str, seconds: float, ok: bool) -> None:
        emit(f"tl {time.perf_counter():.6f} {operation} {seconds:.6f}")

    def state() -> dict:
        links = [{"qkdl_id": link, "qkdl_status": T + status,
                  "qkdl_performance": {"skr": 10**6, "eskr": 10**6}}
                 for link, status in live.items()]
        return {NODE: {"qkdn_status": T + "OPERATING", "qkd_links": {"qkd_link": links}}}

    store.add_listener(on_change)
    agent = QkdAgent(AgentConfig(password=spec["password"], host_key=spec["host_key"]), store,
                     state, ctx=ctx, rpc_observer=on_rpc if timeline else None)
    profile_dir = os.environ.get(PROFILE_ENV)
    profiler = cProfile.Profile(time.thread_time) if profile_dir else None  # CPU, not wall
    with AgentThread(agent) as thread:
        if profiler is not None:
            thread.call(profiler.enable)  # cProfile hooks the calling thread only
        emit(f"port {thread.port}")
        for line in sys.stdin:
            command = json.loads(line)
            if "link" in command:
                live[command["link"][0]] = command["link"][1]
            if "notify" in command:
                agent.notify(command["notify"])
        if profiler is not None:
            thread.call(profiler.disable)
            name = os.path.splitext(os.path.basename(path))[0]
            profiler.dump_stats(os.path.join(profile_dir, f"{name}.prof"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
