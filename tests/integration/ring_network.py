"""Helpers of the ring-network tests (controller, refusals, reroute, reliability items 4 and
10): a ``qkdn up`` network of separate processes, SAE clients with their certificates, the
controller's sessions.json and the agents' running configuration over NETCONF."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from qkdn.bringup import bring_down, bring_up
from qkdn.namespaces import ETSI_NODE_NS, QKDN_KM_NS
from qkdn.netconf_client import connect
from qkdn.sae_client import sae_client
from qkdn.state_files import StateDir, read_json

REPO = Path(__file__).resolve().parents[2]
RING6 = REPO / "topologies" / "ring6.yaml"
NS = {"n": ETSI_NODE_NS, "km": QKDN_KM_NS}


def ring_topology(extra: dict[str, list[dict[str, Any]]], base: Path = RING6) -> dict[str, Any]:
    """topologies/ring6.yaml (or ``base``) with extra ``slas``, ``users`` and ``saes``."""
    raw = yaml.safe_load(base.read_text())
    for key, entries in extra.items():
        raw.setdefault(key, []).extend(entries)
    return raw


@contextmanager
def running_network(root: Path, topology: dict[str, Any], *, timeout: float = 180
                    ) -> Iterator[Network]:
    path = root / "topology.yaml"
    path.write_text(yaml.safe_dump(topology))
    state = StateDir(root / "state")
    try:
        endpoints = bring_up(path, state, timeout=timeout, controller=True)
        yield Network(state, endpoints)
    finally:
        bring_down(state)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Network:
    def __init__(self, state: StateDir, endpoints: dict[str, Any]) -> None:
        self.state = state
        self.endpoints = endpoints
        self.ids = {name: node["qkdn_id"] for name, node in endpoints["nodes"].items()}
        self.names = {v: k for k, v in self.ids.items()}

    # --- applications ---------------------------------------------------------------------
    def sae(self, sae_id: str) -> requests.Session:
        return sae_client(self.endpoints, sae_id)

    def node_of(self, sae_id: str) -> str:
        return self.endpoints["saes"][sae_id]["node"]

    def enc_keys(self, master: str, slave: str, number: int = 1) -> requests.Response:
        url = self.endpoints["nodes"][self.node_of(master)]["etsi014"]
        return self.sae(master).post(f"{url}/{slave}/enc_keys", json={"number": number},
                                     timeout=60)

    def dec_keys(self, slave: str, master: str, key_ids: list[str]) -> requests.Response:
        url = self.endpoints["nodes"][self.node_of(slave)]["etsi014"]
        return self.sae(slave).post(f"{url}/{master}/dec_keys",
                                    json={"key_IDs": [{"key_ID": k} for k in key_ids]},
                                    timeout=60)

    def keys(self, master: str, slave: str, number: int = 1, *, timeout: float = 30
             ) -> tuple[list[dict], list[dict]]:
        """enc_keys (retried on 503 while the session is set up or moved), then dec_keys."""
        deadline = time.monotonic() + timeout
        while True:
            enc = self.enc_keys(master, slave, number)
            if enc.status_code == 200 or time.monotonic() > deadline:
                break
            assert enc.status_code == 503, enc.text
            time.sleep(0.2)
        assert enc.status_code == 200, enc.text
        keys = enc.json()["keys"]
        dec = self.dec_keys(slave, master, [k["key_ID"] for k in keys])
        assert dec.status_code == 200, dec.text
        return keys, dec.json()["keys"]

    def open_connect(self, source: str, destination: str, qos: dict[str, Any]) -> dict:
        url = self.endpoints["nodes"][self.node_of(source)]["etsi004"]
        reply = self.sae(source).post(f"{url}/open_connect", json={
            "source": source, "destination": destination, "QoS": qos, "Key_stream_ID": None},
            timeout=120)
        assert reply.status_code == 200, reply.text
        return reply.json()

    # --- controller -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return read_json(self.state.controller_dir / "sessions.json")

    def active_sessions(self) -> list[dict[str, Any]]:
        return [s for s in self.snapshot()["sessions"] if s["state"] == "active"]

    def session_between(self, sae_a: str, sae_b: str) -> dict[str, Any] | None:
        for s in self.active_sessions():
            ends = {s["initiator"]["sae_id"], s["peer_sae_id"]}
            if ends == {sae_a, sae_b}:
                return s
        return None

    def controller_pid(self) -> int | None:
        try:
            return int(read_json(self.state.controller_ready)["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # --- agents ---------------------------------------------------------------------------
    def running(self, node: str):
        nc = self.endpoints["nodes"][node]["netconf"]
        with connect(nc["host"], nc["port"], nc["username"], nc["password"]) as session:
            return session.get_config(source="running").data_ele

    def session_config(self, node: str) -> tuple[set[str], set[str]]:
        """(app_ids of controller-made qkd_apps, ids of VIRT links) in ``node``'s running
        configuration."""
        data = self.running(node)
        apps = {app.findtext("n:app_id", namespaces=NS)
                for app in data.iterfind(".//n:qkd_app", NS)
                if app.find("km:km_session", NS) is not None}
        virt = {link.findtext("n:qkdl_id", namespaces=NS)
                for link in data.iterfind(".//n:qkd_link", NS)
                if (link.findtext("n:qkdl_type", namespaces=NS) or "").endswith("VIRT")}
        return apps, virt
