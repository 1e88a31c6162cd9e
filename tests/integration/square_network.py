"""Helpers of the controller tests over real NETCONF (southbound, north-bound): four real
agents on loopback in a square (a-b-c on short links, a-d-c on long ones), each with a
libyang-validated datastore and link state it reports in ``get``, and the controller's
southbound, databases, admission control and controller around them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qkd_agent.agent import AgentConfig, AgentThread, QkdAgent
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.node_model import initial_node_config
from qkdn.topology import parse_topology
from sdn_controller.admission_control import AdmissionControl, SessionState
from sdn_controller.controller import Controller
from sdn_controller.routing import GraphRouter
from sdn_controller.southbound import AgentEndpoint, Southbound, SouthboundConfig
from sdn_controller.topology_db import TopologyDb
from sdn_controller.user_db import UserDb

T = "etsi-qkd-node-types:"
NODE = "etsi-qkd-sdn-node:qkd_node"
RAW_TOPOLOGY: dict[str, Any] = {
    "name": "square",
    "nodes": [{"name": n, "location": f"site-{n}"} for n in "abcd"],
    "links": [{"a": "a", "b": "b", "length_km": 10}, {"a": "b", "b": "c", "length_km": 10},
              {"a": "a", "b": "d", "length_km": 30}, {"a": "d", "b": "c", "length_km": 30}],
    "slas": [{"name": "std", "max_bps": 100000, "max_priority": 5, "idle_timeout_s": 60}],
    "users": [{"name": "ua", "sla": "std"}, {"name": "uc", "sla": "std"}],
    "saes": [{"id": "sae-a", "node": "a", "user": "ua"},
             {"id": "sae-c", "node": "c", "user": "uc"}],
}
TOPO = parse_topology(RAW_TOPOLOGY)


def nid(name: str) -> str:
    """The qkdn_id of node ``name``."""
    return TOPO.node(name).qkdn_id


def lid(a: str, b: str) -> str:
    """The qkdl_id of the physical link between ``a`` and ``b``."""
    return next(lk.qkdl_id for lk in TOPO.links if set(lk.ends()) == {a, b})


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
             ) -> None:
    """Poll ``predicate`` every 10 ms until it is true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Signals:
    """The controller's signal sink: keeps the refusals it is told to send to the KMs."""

    def __init__(self) -> None:
        self.refusals: list[tuple[str, Any]] = []

    def refuse(self, node_id: str, refusal: Any) -> None:
        self.refusals.append((node_id, refusal))


class SquareNetwork:
    """The four agents and (unless ``controller=False``) the controller stack over them.

    ``live`` is the state of each link the agents report in ``get`` (status, skr, QBER);
    tests change it to emulate the physical plane. ``users_db`` is a SQLite path for the
    user database (in memory by default); ``clock`` is the topology database's and the
    controller's clock."""

    def __init__(self, tmp_path: Path, password: str, *, controller: bool = True,
                 users_db: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 transport: str = "auto") -> None:
        self.tmp = tmp_path
        #: SSH under the southbound's sessions (``sdn_controller.southbound.Transport``)
        self.transport = transport
        self.password = password
        self.users_db = users_db
        self.clock = clock
        self.live = {lk.qkdl_id: {"status": "ACTIVE", "skr": 50_000 if "d" in lk.ends()
                                  else 90_000, "qber": "0.020"} for lk in TOPO.links}
        self.threads: dict[str, AgentThread] = {}
        self.contexts: dict[str, Any] = {}
        self.datastores: dict[str, Datastore] = {}
        for node in TOPO.nodes:
            self.start_agent(node.name)
        self.southbound: Southbound | None = None
        if controller:
            self.start_controller()

    # --- agents ---------------------------------------------------------------------------
    def start_agent(self, name: str, port: int = 0) -> None:
        """Start (or restart, on ``port``) the agent of ``name``; a restarted agent keeps its
        datastore."""
        if name not in self.datastores:
            ctx = load_context()
            self.contexts[name] = ctx
            self.datastores[name] = Datastore(ctx, initial_node_config(TOPO, name))
        config = AgentConfig(port=port, password=self.password,
                             host_key=self.tmp / f"{name}.key")
        self.threads[name] = AgentThread(QkdAgent(config, self.datastores[name],
                                                  self.state_of(name),
                                                  ctx=self.contexts[name])).start()

    def state_of(self, name: str) -> Callable[[], dict]:
        """The state provider of ``name``'s agent: its links as ``live`` says."""
        def provider() -> dict:
            links = [{"qkdl_id": lk.qkdl_id,
                      "qkdl_status": T + self.live[lk.qkdl_id]["status"],
                      "qkdl_performance": {
                          "skr": self.live[lk.qkdl_id]["skr"],
                          "eskr": self.live[lk.qkdl_id]["skr"],
                          "phys_perf": [{"perf_type": T + "QBER",
                                         "value": self.live[lk.qkdl_id]["qber"]}]}}
                     for lk in TOPO.links_of(name)]
            return {NODE: {"qkdn_status": T + "OPERATING", "qkd_links": {"qkd_link": links}}}
        return provider

    def notify(self, name: str, body: dict) -> None:
        """Send a notification from ``name``'s agent; at least one session must get it."""
        assert self.threads[name].agent.notify(body) >= 1

    def running(self, name: str) -> dict:
        return self.datastores[name].running_json()[NODE]

    def apps(self, name: str) -> dict[str, dict]:
        """The qkd_apps in ``name``'s running configuration, by app_id."""
        return {a["app_id"]: a for a in
                self.running(name).get("qkd_applications", {}).get("qkd_app", [])}

    def virtual_links(self, name: str) -> dict[str, dict]:
        """The VIRT links (forwarding rules) in ``name``'s running configuration, by id."""
        return {lk["qkdl_id"]: lk for lk in self.running(name)["qkd_links"]["qkd_link"]
                if lk.get("qkdl_type") == T + "VIRT"}

    def open(self, src: str, dst: str) -> None:
        """sae-<src> asks its KM for keys shared with sae-<dst> (the KM's notification)."""
        self.notify(src, {"etsi-qkd-sdn-node:sdqkdn_application_new": {"qkd_application": {
            "app_type": T + "CLIENT", "server_app_id": f"sae-{src}",
            "client_app_id": [f"sae-{dst}"], "app_priority": 2, "local_qkdn_id": nid(src),
            "app_qos": {"max_bandwidth": 10_000, "min_bandwidth": 1000},
            "qkdn-key-manager:km_request": {"authenticated_sae_id": f"sae-{src}",
                                            "application_interface": "etsi-004"}}}})

    # --- controller -----------------------------------------------------------------------
    def start_controller(self) -> None:
        """Southbound sessions to the four agents, user and topology databases, admission
        control and the controller; ``controller_built`` runs before the southbound starts."""
        endpoints = [AgentEndpoint(n.qkdn_id, "127.0.0.1", self.threads[n.name].port,
                                   "admin", self.password, n.name) for n in TOPO.nodes]
        # a notification ends a session's wait at once; the wait's bound is how long stop()
        # waits for the session threads (1 s by default, per test)
        self.southbound = Southbound(endpoints, SouthboundConfig(
            poll_interval_s=1.0, backoff_max_s=0.5, notification_wait_s=0.1,
            transport=self.transport))
        self.users = UserDb.open(self.users_db) if self.users_db else UserDb.open()
        self.users.load_topology(TOPO)
        self.topology = TopologyDb.open(clock=self.clock)
        self.admission = AdmissionControl(self.users, GraphRouter(self.topology.links),
                                          clock=time.monotonic)
        self.signals = Signals()
        self.ctl = Controller(self.users, self.topology, self.admission, self.southbound,
                              self.signals, clock=self.clock)
        self.controller_built()
        self.southbound.start(self.ctl.handle_notification,
                              lambda node, reply: self.ctl.ingest_node(reply))

    def controller_built(self) -> None:
        """Hook for what must be in place before the first notification (the NBI)."""

    def establish(self) -> str:
        """One session sae-a ↔ sae-c, configured on a, b and c; returns its id.
        ``setup_s`` is the time from the second request to the configuration on all KMs."""
        self.open("a", "c")
        wait_for(lambda: any(s.state is SessionState.ACCEPTED
                             for s in self.admission.sessions()),
                 what="first request waiting for its peer")
        started = time.perf_counter()
        self.open("c", "a")
        wait_for(lambda: any(s.state is SessionState.ACTIVE for s in self.admission.sessions()),
                 what="session active")
        (session,) = self.admission.sessions()
        sid = session.session_id
        wait_for(lambda: all(sid in self.apps(n) for n in "abc"), what="qkd_app on a, b, c")
        self.setup_s = time.perf_counter() - started
        return sid

    def close(self) -> None:
        if self.southbound is not None:
            self.southbound.stop()
            self.ctl.close()
            self.users.close()
            self.topology.close()
        for thread in self.threads.values():
            thread.stop()


@contextmanager
def connected(network: SquareNetwork) -> Iterator[SquareNetwork]:
    """``network`` once its southbound is connected to every agent and the topology database
    holds the four links as usable; closed on exit."""
    try:
        assert network.southbound is not None
        assert network.southbound.wait_connected(15), "southbound did not connect"
        wait_for(lambda: len([lk for lk in network.topology.links() if lk.usable]) == 4,
                 what="topology from the agents' get replies")
        yield network
    finally:
        network.close()
