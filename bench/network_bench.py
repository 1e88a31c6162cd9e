"""Benchmark of a whole network brought up by ``qkdn up`` (separate processes, loopback).

Rows:

* ``network.up_s`` — ``qkdn up`` of the paper topology until every agent answers;
* ``twin.first_key_s`` — from the start of ``qkdn up`` until every link's key store, at both
  ends, holds key a sender may use at once (read through each agent's NETCONF ``get`` by a
  watcher that connects to each agent as soon as it listens — its port in ``ports.json`` —
  and reads each node until all its stores hold key, so the figure does not wait for the
  node's KM servers or for ``qkdn up`` to return), target 2 s;
* ``network.node_rss_mib`` — resident memory of a node process (agent + KM + modules);
* ``network.fault_to_notification_s`` — ``link-down`` fault recorded to the
  ``sdqkdn_link_down`` notification at an end, target 1 s.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from bench.report import row
from qkdn.bringup import bring_down, bring_up, network_status
from qkdn.namespaces import ETSI_NODE_NS, QKDN_KM_NS
from qkdn.netconf_client import connect
from qkdn.state_files import StateDir, read_json
from qkdn.topology import load_topology

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "topologies" / "paper.yaml"
NS = {"n": ETSI_NODE_NS, "km": QKDN_KM_NS}


def _stores_with_key(session) -> tuple[int, set[str]]:
    """(links of the node, links whose key store holds key) from one NETCONF ``get``."""
    query = f'<qkd_node xmlns="{ETSI_NODE_NS}"><qkd_links/></qkd_node>'
    data = session.get(filter=("subtree", query)).data_ele
    links = data.findall(".//n:qkd_link", NS)
    filled = set()
    for link in links:
        level = link.find(".//km:key_store/km:stored_key_bits", NS)
        if level is not None and int(level.text) > 0:
            filled.add(link.findtext("n:qkdl_id", default="", namespaces=NS))
    return len(links), filled


def _files_signature(folder: str, qkdl_ids: Iterable[str]) -> tuple:
    """(size, mtime) of the files of the link stores ``qkdl_ids`` in ``folder`` — a link
    store is ``<qkdl_id>.sqlite`` (+ ``-wal``, where a new block is written first): changes
    when one of these stores is written. Plain ``stat`` calls (a few microseconds each)."""
    signature = []
    for qkdl_id in qkdl_ids:
        for suffix in (".sqlite", ".sqlite-wal"):
            try:
                stat = os.stat(f"{folder}/{qkdl_id}{suffix}")
            except OSError:
                signature.append(None)
                continue
            signature.append((stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


def _recorded_netconf_port(ports_file: str) -> int:
    """The NETCONF port a node recorded in its ``ports.json`` once its agent listens (0: not
    yet). A node writes it right after its agent starts, before its KM's servers and its
    ``ready.json``."""
    if not os.path.exists(ports_file):
        return 0
    try:
        return int(read_json(Path(ports_file)).get("netconf", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


class _NodeReader:
    """One node's NETCONF reader: connects, then makes a ``get`` each time it is woken, until
    every store of the node has been seen holding key."""

    def __init__(self, watcher: _FirstKeyWatcher, name: str, port: int) -> None:
        self.watcher, self.name, self.port = watcher, name, port
        self.wake = threading.Event()
        self.connected = False
        self.done = False
        self.filled: set[str] = set()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"first-key-{name}")
        self.thread.start()

    def _run(self) -> None:
        watcher, session = self.watcher, None
        try:
            config = read_json(watcher.state.node_config(self.name))["netconf"]
            session = connect(config["host"], self.port, config["username"],
                              config["password"])
            watcher.connected_at[self.name] = time.monotonic() - watcher.started
            self.connected = True
            while not watcher.expired():
                count, self.filled = _stores_with_key(session)
                if count and len(self.filled) == count:
                    watcher.filled_at[self.name] = time.monotonic() - watcher.started
                    return
                self.wake.wait(watcher.FALLBACK_READ_S)
                self.wake.clear()
        except Exception as exc:  # noqa: BLE001 (reported as the row's failure)
            watcher.error = f"node {self.name}: {exc!r}"
        finally:
            self.done = True
            if session is not None:
                with contextlib.suppress(Exception):
                    session.close_session()


class _FirstKeyWatcher(threading.Thread):
    """Records when every link's store, at both ends, first holds key (seconds after
    ``started``), read over NETCONF.

    The watcher itself is one thread that looks at files every ``POLL_S`` (``stat`` and a
    directory listing: it costs the starting nodes nothing and this process little). As soon
    as a node has recorded its agent's port (``ports.json``, written when the agent listens,
    before the node's KM servers and ``ready.json``), a reader thread opens a NETCONF session
    to it (sessions to the six nodes open in parallel) and reads the node's links; it reads
    again whenever a file of one of the node's link stores not yet seen holding key
    (``km/links/``) changed, and at least every ``FALLBACK_READ_S``, until each of the
    node's stores has been seen holding key (start-up consumes no key, so a store that holds
    key keeps it). (Before session 4 each node had its own thread polling its ready file
    every 2.5 ms and its stores every 5 ms: ~0.4–1 s of CPU per run taken from the starting
    network, and the sessions opened only once a node was wholly ready.)

    ``connected_at`` and ``filled_at`` keep, per node, when its session opened and when its
    last store was seen holding key (reply received); the figure is the latest
    ``filled_at``."""

    POLL_S = 0.005
    FALLBACK_READ_S = 0.1

    def __init__(self, state: StateDir, started: float, timeout: float = 120.0) -> None:
        super().__init__(name="first-key-watcher", daemon=True)
        self.state = state
        self.started = started
        self.timeout = timeout
        self.first_key_s: float | None = None
        self.error: str | None = None
        self.stop = threading.Event()
        self.connected_at: dict[str, float] = {}
        self.filled_at: dict[str, float] = {}

    def expired(self) -> bool:
        return self.stop.is_set() or time.monotonic() - self.started > self.timeout

    def run(self) -> None:
        topology = load_topology(PAPER)
        names = [node.name for node in topology.nodes]
        links = {name: [link.qkdl_id for link in topology.links_of(name)] for name in names}
        ports_files = {name: str(self.state.node_dir(name) / "ports.json") for name in names}
        stores = {name: str(self.state.node_dir(name) / "km" / "links") for name in names}
        readers: dict[str, _NodeReader] = {}
        seen: dict[str, tuple] = {}
        while not self.expired() and self.error is None:
            for name in names:
                reader = readers.get(name)
                if reader is None:
                    port = _recorded_netconf_port(ports_files[name])
                    if port:
                        readers[name] = _NodeReader(self, name, port)
                    continue
                if reader.done or not reader.connected:
                    continue
                filled = reader.filled
                changed = _files_signature(stores[name],
                                           [q for q in links[name] if q not in filled])
                if changed != seen.get(name):
                    seen[name] = changed
                    reader.wake.set()
            if len(readers) == len(names) and all(r.done for r in readers.values()):
                break
            self.stop.wait(self.POLL_S)
        for reader in readers.values():
            reader.wake.set()
            reader.thread.join(5)
        if len(self.filled_at) == len(names):
            self.first_key_s = max(self.filled_at.values())
        elif self.error is None:
            self.error = (f"links did not deliver key within {self.timeout:.0f} s (nodes "
                          f"with key everywhere: {sorted(self.filled_at)})")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _one_run(workdir: Path) -> dict[str, float]:
    state = StateDir(workdir)
    started = time.monotonic()
    watcher = _FirstKeyWatcher(state, started)
    watcher.start()
    try:
        endpoints = bring_up(PAPER, state, timeout=120)
    except BaseException:
        watcher.stop.set()
        raise
    try:
        up_s = time.monotonic() - started
        sessions = {}
        for name, node in endpoints["nodes"].items():
            nc = node["netconf"]
            sessions[name] = connect(nc["host"], nc["port"], nc["username"], nc["password"])
        watcher.join(120)
        if watcher.first_key_s is None:
            raise RuntimeError(f"first key not seen: {watcher.error}")
        first_key_s = watcher.first_key_s
        rss = [_rss_mib(p["pid"]) for p in network_status(state)["processes"]]

        from qkd_twin.faults import FaultKind, append_fault

        node_a = sessions["4"]
        node_a.create_subscription()
        record = append_fault(state.root, "4", "5", FaultKind.LINK_DOWN, None)
        note = node_a.take_notification(block=True, timeout=10)
        while note is not None and "sdqkdn_link_down" not in note.notification_xml:
            note = node_a.take_notification(block=True, timeout=10)
        fault_s = time.time() - record.effective_time if note is not None else float("nan")
        for session in sessions.values():
            session.close_session()
        return {"up": up_s, "first_key": first_key_s, "rss": statistics.median(rss),
                "fault": fault_s}
    finally:
        bring_down(state)


def run(quick: bool = False) -> list[dict]:
    runs = 1 if quick else 3
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="qkdn-bench-") as tmp:
            results.append(_one_run(Path(tmp)))
    up = [r["up"] for r in results]
    first = [r["first_key"] for r in results]
    rss = [r["rss"] for r in results]
    fault = [r["fault"] for r in results]
    return [
        row("network.up_s", statistics.median(up), "s", samples=up),
        row("twin.first_key_s", statistics.median(first), "s", target="<= 2",
            meets=statistics.median(first) <= 2.0, samples=first),
        row("network.node_rss_mib", statistics.median(rss), "MiB", samples=rss),
        row("network.fault_to_notification_s", statistics.median(fault), "s", target="<= 1",
            meets=statistics.median(fault) <= 1.0, samples=fault),
    ]


if __name__ == "__main__":
    from bench.report import format_table

    print(format_table(run(quick=True)))
