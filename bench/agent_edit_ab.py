"""Agent CPU per edit-config of two source trees side by side, edit for edit.

``bench.agent_edit_cpu`` runs one agent after the other; on a shared machine the load moves
between the runs by more than the difference being measured. This tool starts the relay
agent (``bench.netconf_agent_process``, node ``2`` of the controller benchmark's line) from
each ``--tree`` at the same time, connects to each as the controller does (ncclient's
event-driven sessions, AES-GCM, ``sdn_controller.netconf_pipeline`` sends) and sends the same
install/removal edit-configs to them in turn — one to A, one to B, … — so that both see the
same machine. It reports each agent's ``/proc`` CPU per edit-config over ``--blocks`` blocks
(median and minimum of the per-block figures) and wall-clock p50.

    PYTHONPATH=. python -m bench.agent_edit_ab --tree /tmp/main --tree . [--edits 1500]
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

from bench.agent_edit_cpu import _relay_rpcs
from bench.netconf_agent_process import stop as stop_agent
from bench.process_cpu import process_cpu_s


def _start(tree: Path, initial: dict, workdir: Path) -> tuple[subprocess.Popen, int]:
    spec = workdir / "relay.json"
    spec.write_text(json.dumps({"initial": initial, "password": "bench-pw",
                                "host_key": str(workdir / "relay.key"), "links": []}))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("QKDN_BENCH_AGENT_PROFILE", None)
    proc = subprocess.Popen([sys.executable, "-m", "bench.netconf_agent_process", str(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            bufsize=1, env=env, cwd=tree)
    first = (proc.stdout.readline() if proc.stdout else "").split()
    if first[:1] != ["port"]:
        proc.kill()
        raise RuntimeError(f"the agent from {tree} did not start")
    # its commit reports are read (and dropped): a full pipe would stop the agent
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, int(first[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, required=True)
    parser.add_argument("--edits", type=int, default=1500, help="per agent")
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    from ncclient import manager

    from qkdn.netconf_client import install_event_driven_sessions
    from sdn_controller.netconf_pipeline import send_edit_config
    from sdn_controller.southbound import prefer_aead_ciphers

    install_event_driven_sessions()
    prefer_aead_ciphers()
    initial, payloads = _relay_rpcs(args.edits + 20)
    agents = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i, tree in enumerate(args.tree):
                work = Path(tmp) / str(i)
                work.mkdir()
                proc, port = _start(tree.resolve(), initial, work)
                session = manager.connect(host="127.0.0.1", port=port, username="admin",
                                          password="bench-pw", hostkey_verify=False,
                                          allow_agent=False, look_for_keys=False, timeout=10)
                session.create_subscription()
                agents.append((tree, proc, session))
            for payload in payloads[:20]:  # warm-up
                for _, _, session in agents:
                    send_edit_config(session._session, "relay", payload).wait()
            per_block = {i: [] for i in range(len(agents))}
            walls = {i: [] for i in range(len(agents))}
            block = max(2, args.edits // args.blocks // 2 * 2)  # whole install/removal pairs
            body = payloads[20:]
            for start in range(0, len(body) - block + 1, block):
                cpu0 = [process_cpu_s(proc.pid) for _, proc, _ in agents]
                for payload in body[start:start + block]:
                    for i, (_, _, session) in enumerate(agents):
                        t = time.perf_counter()
                        send_edit_config(session._session, "relay", payload).wait()
                        walls[i].append((time.perf_counter() - t) * 1000)
                for i, (_, proc, _) in enumerate(agents):
                    per_block[i].append((process_cpu_s(proc.pid) - cpu0[i]) * 1000 / block)
            for i, (tree, _, _) in enumerate(agents):
                cpu = per_block[i]
                print(f"{tree!s:28s} agent CPU per edit-config median {statistics.median(cpu):.3f}"
                      f" ms, min {min(cpu):.3f} ms over {len(cpu)} blocks of {block}; wall p50 "
                      f"{statistics.median(walls[i]):.2f} ms (load {os.getloadavg()[0]:.1f})",
                      flush=True)
        finally:
            for _, proc, session in agents:
                try:
                    session.close_session()
                except Exception as exc:  # noqa: BLE001 (the agent may be gone already)
                    print(f"close-session failed: {exc}", file=sys.stderr)
                stop_agent(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
