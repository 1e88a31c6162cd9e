"""A network of KMs on loopback with a deterministic key source: for tests, benchmarks and
``qkdn km`` demos without the digital twin.

``LocalKmNetwork(tmp, nodes=["A","B","C"], links=[("A","B"),("B","C")], saes={"sae-a":"A",...})``
issues the PKI, starts one :class:`~kms.key_manager.KeyManager` per node on 127.0.0.1
(ephemeral ports), wires the directory, and :meth:`feed` delivers identical blocks to both
ends of a link — exactly what the twin's paired modules do.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from kms.directory import Directory, NodeEntry
from kms.https_server import TlsFiles
from kms.key_manager import KeyManager, KmConfig
from kms.pki import NetworkPkiFiles, issue_network_pki


def node_qkdn_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.node.qkdn"))


def link_id(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{x}-{y}.link.qkdn"))


def test_block(seed: str, index: int, size: int) -> bytes:
    """Deterministic block ``index`` of a link (SHAKE-256 of seed and index)."""
    return hashlib.shake_256(f"{seed}/{index}".encode()).digest(size)


def virtual_link(qkdl_id: str, session_id: str, prev: str | None, nxt: str | None, *,
                 ends: tuple[str, str] | None = None, bandwidth: int | None = None
                 ) -> dict[str, Any]:
    """The forwarding rule a controller pushes for one session leg (RFC 7951 JSON of an ETSI
    015 VIRT ``qkd_link``): the neighbours ``prev`` and ``nxt`` on the path (None at an end),
    optionally the path's two ``ends`` and its ``virt_bandwidth``. Nodes are names here."""
    link: dict[str, Any] = {"qkdl_id": qkdl_id, "qkdl_type": "etsi-qkd-node-types:VIRT"}
    if ends is not None:
        link["qkdl_local"] = {"qkdn_id": node_qkdn_id(ends[0])}
        link["qkdl_remote"] = {"qkdn_id": node_qkdn_id(ends[1])}
    link["qkdl_applications"] = [session_id]
    if bandwidth is not None:
        link["virt_bandwidth"] = bandwidth
    if prev:
        link["virt_prev_hop"] = node_qkdn_id(prev)
    if nxt:
        link["virt_next_hop"] = [node_qkdn_id(nxt)]
    return link


def directory_for(node: str, nodes: Sequence[str], links: Iterable[tuple[str, str]],
                  saes: Mapping[str, str], urls: Mapping[str, str] | None = None) -> Directory:
    urls = urls or {}
    peers = {}
    for a, b in links:
        if a == node:
            peers[b] = link_id(a, b)
        elif b == node:
            peers[a] = link_id(a, b)
    return Directory(saes=dict(saes),
                     nodes={n: NodeEntry(n, node_qkdn_id(n), urls.get(n, "")) for n in nodes},
                     links=peers)


DEFAULT_KM_CONFIG = KmConfig()


class LocalKmNetwork(NetworkPkiFiles):
    """Start/stop a set of KMs; context manager."""

    def __init__(self, state_dir: Path, nodes: Sequence[str], links: Sequence[tuple[str, str]],
                 saes: Mapping[str, str], config: KmConfig = DEFAULT_KM_CONFIG,
                 clock=time.time) -> None:
        self.state_dir = Path(state_dir)
        self.nodes, self.links, self.saes = list(nodes), list(links), dict(saes)
        self.pki = issue_network_pki(self.state_dir, self.nodes, self.saes)
        self.notifications: list[tuple[str, dict]] = []
        self.kms: dict[str, KeyManager] = {}
        self._config = config
        self._clock = clock
        self._next_block: dict[str, int] = {}

    def tls(self, node: str) -> TlsFiles:
        km = self.pki["kms"][node]
        return TlsFiles(Path(km["cert"]), Path(km["key"]), Path(self.pki["ca_cert"]))

    def _recorder(self, node: str) -> Callable[[dict], None]:
        def record(body: dict) -> None:
            self.notifications.append((node, body))
        return record

    def start(self) -> Self:
        for node in self.nodes:
            km = KeyManager(node, node_qkdn_id(node), self.state_dir / "nodes" / node,
                            directory_for(node, self.nodes, self.links, self.saes),
                            self.tls(node), notify=self._recorder(node),
                            clock=self._clock, config=self._config)
            self.kms[node] = km.start()
        urls = {n: km.base_url for n, km in self.kms.items()}
        for node, km in self.kms.items():
            km.set_directory(directory_for(node, self.nodes, self.links, self.saes, urls))
        return self

    def feed(self, a: str, b: str, blocks: int = 4, size: int = 4096) -> None:
        """Deliver the next ``blocks`` identical blocks to both ends of link a–b."""
        qkdl = link_id(a, b)
        start = self._next_block.get(qkdl, 0)
        for index in range(start, start + blocks):
            block = test_block(qkdl, index, size)
            for end in (a, b):
                if end in self.kms:
                    self.kms[end].deliver(qkdl, index, block)
        self._next_block[qkdl] = start + blocks

    def stop(self) -> None:
        for km in self.kms.values():
            km.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
