"""Benchmark of one NETCONF agent, measured through ncclient on loopback.

Starts a real ``qkdn agent`` in a subprocess holding 50 physical links and 200 applications,
then measures:

* ``agent.get_p50_ms`` — ``<get>`` of the whole ``qkd_node`` (config + state), target 10 ms;
* ``agent.edit_p50_ms`` — ``<edit-config>`` adding one application and one virtual link,
  target 10 ms (each addition is removed again outside the timed region);
* ``agent.connect_ms`` — TCP + SSH + NETCONF hello until the session is usable, target 300 ms;
* ``agent.rss_mib`` — peak resident set size of the agent process, target 80 MiB.

``python -m bench.agent_bench [--quick]`` prints the results as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Self

from bench.process_cpu import process_cpu_s

REPO = Path(__file__).resolve().parent.parent
NODE = "etsi-qkd-sdn-node"
TYPES = "etsi-qkd-node-types"
NODE_NS = "urn:etsi:qkd:yang:etsi-qkd-node"
TYPES_NS = "urn:etsi:qkd:yang:etsi-qkd-node-types"
PASSWORD = "bench-password"

TARGET_GET_MS = 10.0
TARGET_EDIT_MS = 10.0
TARGET_CONNECT_MS = 300.0
TARGET_RSS_MIB = 80.0


def _uuid(kind: int, n: int) -> str:
    return f"{kind:08x}-0000-4000-8000-{n:012x}"


def build_node_config(qkdn_id: str, links: int, apps: int) -> dict:
    """RFC 7951 JSON of a node with ``links`` physical links and ``apps`` applications."""
    link_list = []
    for i in range(links):
        link_list.append({
            "qkdl_id": _uuid(1, i),
            "qkdl_enable": True,
            "qkdl_local": {"qkdn_id": qkdn_id, "qkdi_id": i + 1},
            "qkdl_remote": {"qkdn_id": _uuid(2, i), "qkdi_id": 1},
            "qkdl_type": f"{TYPES}:PHYS",
            "phys_channel_att": "4.5",
            "phys_qkd_role": f"{TYPES}:TRANSMITTER",
        })
    interfaces = [{"qkdi_id": i + 1, "qkdi_model": "twin-dv-bb84",
                   "qkdi_type": f"{TYPES}:DV-QKD",
                   "qkdi_att_point": {"device": "twin", "port": i + 1}}
                  for i in range(links)]
    app_list = []
    for j in range(apps):
        app_list.append({
            "app_id": _uuid(3, j),
            "app_type": f"{TYPES}:CLIENT",
            "server_app_id": f"sae://node/app-{j}",
            "client_app_id": [f"sae://peer/app-{j}"],
            "app_priority": j % 8,
            "app_qos": {"max_bandwidth": 100000, "min_bandwidth": 1000, "jitter": 10, "ttl": 3600},
            "backing_qkdl_id": [_uuid(1, j % max(links, 1))] if links else [],
            "local_qkdn_id": qkdn_id,
            "remote_qkdn_id": _uuid(2, j % max(links, 1)),
        })
    return {f"{NODE}:qkd_node": {
        "qkdn_id": qkdn_id,
        "qkdn_capabilities": {"link_stats_support": True, "application_stats_support": True,
                              "key_relay_mode_enable": True},
        "qkd_interfaces": {"qkd_interface": interfaces},
        "qkd_links": {"qkd_link": link_list},
        "qkd_applications": {"qkd_app": app_list},
    }}


def add_session_xml(qkdn_id: str, n: int) -> str:
    """edit-config body adding one application and the virtual link it rides on."""
    app_id, link_id = _uuid(4, n), _uuid(5, n)
    return f"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
<qkd_node xmlns="{NODE_NS}" xmlns:t="{TYPES_NS}"><qkdn_id>{qkdn_id}</qkdn_id>
 <qkd_applications><qkd_app><app_id>{app_id}</app_id><app_type>t:CLIENT</app_type>
  <server_app_id>sae://node/bench-{n}</server_app_id><client_app_id>sae://peer/bench-{n}</client_app_id>
  <app_priority>1</app_priority><app_qos><max_bandwidth>50000</max_bandwidth></app_qos>
  <backing_qkdl_id>{link_id}</backing_qkdl_id><local_qkdn_id>{qkdn_id}</local_qkdn_id>
 </qkd_app></qkd_applications>
 <qkd_links><qkd_link><qkdl_id>{link_id}</qkdl_id><qkdl_type>t:VIRT</qkdl_type>
  <qkdl_applications>{app_id}</qkdl_applications>
  <virt_prev_hop>{_uuid(2, 1)}</virt_prev_hop><virt_next_hop>{_uuid(2, 2)}</virt_next_hop>
  <virt_bandwidth>50000</virt_bandwidth></qkd_link></qkd_links>
</qkd_node></config>"""


def remove_session_xml(qkdn_id: str, n: int) -> str:
    nc = "urn:ietf:params:xml:ns:netconf:base:1.0"
    return f"""<config xmlns="{nc}">
<qkd_node xmlns="{NODE_NS}"><qkdn_id>{qkdn_id}</qkdn_id>
 <qkd_applications><qkd_app xmlns:nc="{nc}" nc:operation="delete"><app_id>{_uuid(4, n)}</app_id></qkd_app></qkd_applications>
 <qkd_links><qkd_link xmlns:nc="{nc}" nc:operation="delete"><qkdl_id>{_uuid(5, n)}</qkdl_id></qkd_link></qkd_links>
</qkd_node></config>"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _result(name: str, samples: list[float], unit: str, target: float) -> dict:
    p50 = statistics.median(samples)
    return {"name": name, "value": round(p50, 3), "unit": unit, "target": target,
            "meets": p50 <= target, "runs": len(samples), "p50": round(p50, 3),
            "p99": round(_percentile(samples, 99), 3)}


class AgentProcess:
    """``qkdn agent`` in a subprocess on an ephemeral port (context manager)."""

    def __init__(self, workdir: Path, config: dict) -> None:
        self.workdir = workdir
        self.config_file = workdir / "initial.json"
        self.config_file.write_text(json.dumps(config))
        self.log_file = workdir / "agent.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Self:
        env = dict(os.environ, PYTHONPATH=str(REPO), QKDN_AGENT_PASSWORD=PASSWORD)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qkdn.cli", "agent", "--host", "127.0.0.1", "--port", "0",
             "--username", "bench", "--initial-config", str(self.config_file),
             "--host-key", str(self.workdir / "host_key")],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self.log_file.open("w"), text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"agent did not start: {line!r} {self.log_file.read_text()!r}")
        self.port = int(line.split()[4].rsplit(":", 1)[1])
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU time the agent process has used so far."""
        assert self.proc is not None
        return process_cpu_s(self.proc.pid)

    def peak_rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def connect(port: int):
    """An ncclient session as qkdn's tools and controller open it
    (:func:`qkdn.netconf_client.connect`): ncclient's session loop made event-driven, so a
    request is written at once instead of at the session thread's next ``TICK`` (100 ms by
    default; this benchmark lowered it to 1 ms before session 3)."""
    from qkdn.netconf_client import connect as netconf_connect

    return netconf_connect("127.0.0.1", port, "bench", PASSWORD, timeout=30)


def _time_ms(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1000


def run(quick: bool = False) -> list[dict]:
    """Run the benchmark; one result dict per metric."""
    gets, edits, connects = (30, 20, 5) if quick else (300, 150, 30)
    qkdn_id = str(uuid.uuid4())
    config = build_node_config(qkdn_id, links=50, apps=200)
    flt = f'<qkd_node xmlns="{NODE_NS}"/>'
    with tempfile.TemporaryDirectory() as tmp, AgentProcess(Path(tmp), config) as agent:
        connect_ms = []
        for _ in range(connects):
            start = time.perf_counter()
            m = connect(agent.port)
            connect_ms.append((time.perf_counter() - start) * 1000)
            m.close_session()
        with connect(agent.port) as m:
            reply = m.get(filter=("subtree", flt))
            if reply.data_xml.count("<qkd_link>") < 50 or reply.data_xml.count("<qkd_app>") < 200:
                raise RuntimeError("the agent does not hold the benchmark node")
            for _ in range(3):
                m.get(filter=("subtree", flt))
            cpu0, own0 = agent.cpu_seconds(), time.process_time()
            get_ms = [_time_ms(lambda: m.get(filter=("subtree", flt))) for _ in range(gets)]
            get_cpu = ((agent.cpu_seconds() - cpu0) * 1000 / gets,
                       (time.process_time() - own0) * 1000 / gets)
            cpu0, own0 = agent.cpu_seconds(), time.process_time()
            edit_ms = []
            for n in range(edits):
                body = add_session_xml(qkdn_id, n)
                start = time.perf_counter()
                m.edit_config(target="running", config=body)
                edit_ms.append((time.perf_counter() - start) * 1000)
                m.edit_config(target="running", config=remove_session_xml(qkdn_id, n))
            # both edits of a round are counted: CPU per timed edit is half the total
            edit_cpu = ((agent.cpu_seconds() - cpu0) * 1000 / (2 * edits),
                        (time.process_time() - own0) * 1000 / (2 * edits))
        rss = agent.peak_rss_mib()
        load = os.getloadavg()[0]
    get_result = _result("agent.get_p50_ms", get_ms, "ms", TARGET_GET_MS)
    edit_result = _result("agent.edit_p50_ms", edit_ms, "ms", TARGET_EDIT_MS)
    # context for reading wall-clock figures on a shared machine: CPU per operation of the
    # agent process and of the ncclient side, and the 1-minute load average
    for result, (agent_cpu, client_cpu) in ((get_result, get_cpu), (edit_result, edit_cpu)):
        result.update(agent_cpu_ms=round(agent_cpu, 3), client_cpu_ms=round(client_cpu, 3),
                      load_avg=round(load, 2))
    return [
        get_result,
        edit_result,
        _result("agent.connect_ms", connect_ms, "ms", TARGET_CONNECT_MS),
        {"name": "agent.rss_mib", "value": round(rss, 1), "unit": "MiB", "target": TARGET_RSS_MIB,
         "meets": rss <= TARGET_RSS_MIB, "runs": 1, "p50": round(rss, 1), "p99": round(rss, 1)},
    ]


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
