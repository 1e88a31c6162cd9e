"""Benchmark of a whole network brought up by ``qkdn up`` (separate processes, loopback).

Rows:

* ``network.up_s`` — ``qkdn up`` of the paper topology until every agent answers;
* ``twin.first_key_s`` — from the start of ``qkdn up`` until every link's key store, at both
  ends, holds key a sender may use at once (read through each agent's NETCONF ``get`` by a
  watcher thread that connects to each agent as soon as its ready file appears and reads each
  node until all its stores hold key, so the figure does not wait for ``qkdn up`` to return),
  target 2 s;
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


def _files_signature(folder: Path, skip: set[str]) -> tuple:
    """(name, size, mtime) of the files in ``folder`` — a link store is
    ``<qkdl_id>.sqlite`` (+ ``-wal``, ``-shm``) — except those of the links in ``skip``
    (already seen holding key): changes when one of the other stores is written."""
    try:
        return tuple(sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                            for entry in os.scandir(folder)
                            if entry.name.split(".", 1)[0] not in skip))
    except OSError:
        return ()


class _FirstKeyWatcher(threading.Thread):
    """Records when every link's store, at both ends, first holds key (seconds after
    ``started``), read over NETCONF.

    One reader thread per node waits for the node's ready file, opens a NETCONF session at
    once (the six nodes become ready within a few tens of milliseconds: sequential SSH
    connections would add up) and reads the node's links until each of its stores has been
    seen holding key (start-up consumes no key, so a store that holds key keeps it). A read
    is made whenever a file of one of the node's link stores not yet seen holding key
    (``km/links/``) changed — checked every 5 ms with ``stat``, which costs the node nothing,
    where a NETCONF ``get`` every 10 ms cost the starting nodes a sizeable share of the two
    cores — and at least every ``FALLBACK_READ_S``. ``connected_at`` and ``filled_at`` keep, per node, when its session
    opened and when its last store was seen holding key (reply received); the figure is the
    latest ``filled_at``."""

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

    def _expired(self) -> bool:
        return self.stop.is_set() or time.monotonic() - self.started > self.timeout

    def _watch_node(self, name: str) -> None:
        session = None
        try:
            while session is None:
                if self._expired():
                    return
                try:
                    ready = read_json(self.state.node_ready(name))
                    config = read_json(self.state.node_config(name))["netconf"]
                except (OSError, ValueError, KeyError):
                    time.sleep(self.POLL_S / 2)
                    continue
                session = connect(config["host"], ready["netconf_port"], config["username"],
                                  config["password"])
                self.connected_at[name] = time.monotonic() - self.started
            stores = self.state.node_dir(name) / "km" / "links"
            seen, read_at, filled = None, 0.0, set()
            while not self._expired():
                changed = _files_signature(stores, skip=filled)
                if changed != seen or time.monotonic() - read_at >= self.FALLBACK_READ_S:
                    seen, read_at = changed, time.monotonic()
                    count, filled = _stores_with_key(session)
                    if count and len(filled) == count:
                        self.filled_at[name] = time.monotonic() - self.started
                        return
                time.sleep(self.POLL_S)
        except Exception as exc:  # noqa: BLE001 (reported as the row's failure)
            self.error = f"node {name}: {exc!r}"
        finally:
            if session is not None:
                with contextlib.suppress(Exception):
                    session.close_session()

    def run(self) -> None:
        names = [node.name for node in load_topology(PAPER).nodes]
        readers = [threading.Thread(target=self._watch_node, args=(name,), daemon=True,
                                    name=f"first-key-{name}") for name in names]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
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
