"""Timeline of one session set-up through the controller and real agent processes.

``python -m bench.controller_setup_timeline [RUNS]`` sets up RUNS sessions over 1 hop and over
5 hops on the benchmark's 6-node line (``bench.controller_bench``) and prints, per kind, the
median time after the first ``sdqkdn_application_new`` was sent of each step:

- controller: each notification handled (start/end), admission control (both requests:
  access, routing, reservation, per-KM configuration), the payloads built, each KM's
  edit-config sent (written to its SSH channel) and its reply read;
- each agent (its own process; ``perf_counter`` is CLOCK_MONOTONIC, so comparable): the
  edit-config received and answered, and the commit of its datastore.

It also prints the CPU time of the controller's process and of all agent processes per
set-up. There are no KMs in this benchmark (set-up ends when every agent on the path
committed), as in ``controller.setup_ms_*``. Diagnostic only: not part of ``bench.run``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.controller_bench import _AgentNetwork, _line
from bench.process_cpu import process_cpu_s


class _Recorder:
    """Controller-side events, by wrapping the controller's functions in this process."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def mark(self, what: str) -> None:
        with self._lock:
            self.events.append((time.perf_counter(), what))

    def wrap(self, owner: Any, name: str, label: Callable[..., str]) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            what = label(*args, **kwargs)
            self.mark(f"{what} start")
            try:
                return original(*args, **kwargs)
            finally:
                self.mark(f"{what} end")

        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, original))

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()


def _instrument(rec: _Recorder, names: dict[str, str]) -> None:
    from sdn_controller import admission_control, controller, netconf_pipeline, southbound

    rec.wrap(controller.Controller, "handle_notification",
             lambda self, node_id, message: f"ctl notification from {names[node_id]}")
    rec.wrap(admission_control.AdmissionControl, "request_config",
             lambda self, req: f"ctl admission ({names[req.node_id]}'s request)")
    rec.wrap(controller, "plan_session_push", lambda configs: "ctl payloads built")
    original_send = netconf_pipeline.send_edit_config

    def send(session: Any, node_id: str, config: Any, **kwargs: Any) -> Any:
        rec.mark(f"ctl edit-config to {names[node_id]} send start")
        pending = original_send(session, node_id, config, **kwargs)
        rec.mark(f"ctl edit-config to {names[node_id]} send end")
        return pending

    original_reply = netconf_pipeline.PendingEdit.deliver_reply

    def deliver_reply(self: Any, raw: str) -> None:
        rec.mark(f"ctl edit-config reply from {names[self.node_id]} read")
        original_reply(self, raw)

    southbound.send_edit_config = send
    netconf_pipeline.PendingEdit.deliver_reply = deliver_reply  # type: ignore[method-assign]
    rec._undo += [lambda: setattr(southbound, "send_edit_config", original_send),
                  lambda: setattr(netconf_pipeline.PendingEdit, "deliver_reply",
                                  original_reply)]


def _one(net: _AgentNetwork, rec: _Recorder, dst: str, path: list[str]
         ) -> tuple[dict[str, float], float, float, float]:
    """One set-up: {step: ms after start}, wall ms, controller CPU ms, agents' CPU ms."""
    before = {s.session_id for s in net.admission.sessions(include_terminated=True)}
    rec.events.clear()
    net.agent_events.clear()
    agents_cpu = sum(process_cpu_s(p.pid) for p in net.procs.values())
    cpu = time.process_time()
    started = time.perf_counter()
    net.open("0", dst)
    net.open(dst, "0")

    def configured() -> bool:
        sessions = [s for s in net.admission.sessions() if s.session_id not in before]
        return bool(sessions) and all(sessions[0].session_id in net.apps[n] for n in path)

    net.wait(configured)
    wall = (time.perf_counter() - started) * 1000
    cpu_ms = (time.process_time() - cpu) * 1000
    agents_ms = (sum(process_cpu_s(p.pid) for p in net.procs.values()) - agents_cpu) * 1000
    time.sleep(0.02)   # the last replies and agent lines
    steps: dict[str, float] = {}
    for at, what in rec.events:
        if at >= started:   # not the previous teardown's late replies
            steps.setdefault(what, (at - started) * 1000)
    for at, node, what in net.agent_events:
        operation, *seconds = what.split()
        if operation == "committed" and at >= started:
            steps.setdefault(f"agent {node} committed", (at - started) * 1000)
        elif operation == "edit-config" and at - float(seconds[0]) >= started:
            steps.setdefault(f"agent {node} edit-config received",
                             (at - float(seconds[0]) - started) * 1000)
            steps.setdefault(f"agent {node} edit-config answered", (at - started) * 1000)
    (session,) = [s for s in net.admission.sessions() if s.session_id not in before]
    net.close_session("0", session.session_id)
    net.wait(lambda: net.torn_down(session.session_id, path))
    return steps, wall, cpu_ms, agents_ms


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 15
    from qkdn.topology import parse_topology

    rec = _Recorder()
    names = {n.qkdn_id: n.name for n in parse_topology(_line(6)).nodes}
    _instrument(rec, names)   # before the southbound binds the controller's handlers
    with tempfile.TemporaryDirectory() as tmp:
        net = _AgentNetwork(_line(6), Path(tmp), timeline=True)
        try:
            for _ in range(3):
                _one(net, rec, "1", ["0", "1"])
            for kind, dst in (("1 hop", "1"), ("5 hops", "5")):
                path = [str(i) for i in range(int(dst) + 1)]
                results = [_one(net, rec, dst, path) for _ in range(runs)]
                walls = [r[1] for r in results]
                print(f"== {kind}: set-up p50 {statistics.median(walls):.2f} ms, controller "
                      f"CPU {statistics.mean(r[2] for r in results):.2f} ms, agents' CPU "
                      f"{statistics.mean(r[3] for r in results):.1f} ms per set-up "
                      f"({runs} runs, load {os.getloadavg()[0]:.1f})")
                steps: dict[str, list[float]] = {}
                for result in results:
                    for what, at in result[0].items():
                        steps.setdefault(what, []).append(at)
                for what, ats in sorted(steps.items(), key=lambda kv: statistics.median(kv[1])):
                    print(f"{statistics.median(ats):8.2f} ms  {what}")
        finally:
            rec.restore()
            net.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
