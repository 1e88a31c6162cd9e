"""Where things live: SAE → node, node → KM endpoint and qkdn_id, peer node → physical link.

A value object the node runtime builds from the topology (and refreshes when ports are known);
:class:`FileSignature` tells the runtime when the files it is built from have changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kms.errors import KeyNotFound, NoRoute


@dataclass(frozen=True)
class NodeEntry:
    """One node's KM as other KMs reach it."""

    name: str
    qkdn_id: str
    relay_url: str = ""   # base URL of the KM-to-KM relay server (https://127.0.0.1:port)


@dataclass(frozen=True)
class Directory:
    """Read-only lookups; ``links`` is seen from the local node: peer node name → qkdl_id."""

    saes: Mapping[str, str] = field(default_factory=dict)
    nodes: Mapping[str, NodeEntry] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)

    def node_of_sae(self, sae_id: str) -> str:
        try:
            return self.saes[sae_id]
        except KeyError:
            raise KeyNotFound(f"unknown SAE {sae_id!r}") from None

    def node(self, name: str) -> NodeEntry:
        try:
            return self.nodes[name]
        except KeyError:
            raise NoRoute(f"unknown node {name!r}") from None

    def node_by_qkdn_id(self, qkdn_id: str) -> NodeEntry:
        for entry in self.nodes.values():
            if entry.qkdn_id.lower() == qkdn_id.lower():
                return entry
        raise NoRoute(f"unknown node with qkdn_id {qkdn_id}")

    def link_to(self, peer_node: str) -> str:
        try:
            return self.links[peer_node]
        except KeyError:
            raise NoRoute(f"no physical link to {peer_node!r}") from None

    def is_adjacent(self, peer_node: str) -> bool:
        return peer_node in self.links


@dataclass(frozen=True)
class FileSignature:
    """``(inode, mtime, size)`` of each of a set of files (``None`` for a missing one): two equal
    signatures mean nothing was rewritten in between (files are replaced atomically)."""

    stamps: tuple[tuple[int, int, int] | None, ...]

    @classmethod
    def of(cls, paths: Iterable[str | os.PathLike[str]]) -> FileSignature:
        stamps: list[tuple[int, int, int] | None] = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return cls(tuple(stamps))
