"""A KM opens the stores of all its links at start, in parallel, each registered once."""

from __future__ import annotations

import threading
from pathlib import Path

from kms.directory import Directory, NodeEntry
from kms.https_server import TlsFiles
from kms.key_manager import KeyManager


def _directory(peers: int) -> Directory:
    nodes = {"hub": NodeEntry("hub", "00000000-0000-0000-0000-000000000000")}
    links = {}
    for i in range(1, peers + 1):
        nodes[f"n{i}"] = NodeEntry(f"n{i}", f"00000000-0000-0000-0000-00000000000{i}")
        links[f"n{i}"] = f"link-{i}"
    return Directory(nodes=nodes, links=links)


def _km(tmp_path: Path, peers: int) -> KeyManager:
    tls = TlsFiles(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem")
    return KeyManager("hub", "00000000-0000-0000-0000-000000000000", tmp_path, _directory(peers),
                      tls)


def test_every_link_store_is_open_at_start_and_reports_key(tmp_path, monkeypatch):
    from kms import key_manager

    opened_in: set[str] = set()
    new_store = key_manager.KeyManager._new_store

    def recording(self, peer):
        opened_in.add(threading.current_thread().name)
        return new_store(self, peer)

    monkeypatch.setattr(key_manager.KeyManager, "_new_store", recording)
    km = _km(tmp_path, 4)
    try:
        assert sorted(p.name for p in (tmp_path / "km" / "links").glob("*.sqlite")) == [
            f"link-{i}.sqlite" for i in range(1, 5)]
        assert all(name.startswith("km-store") for name in opened_in)   # in the pool's threads
        stores = [km.store(f"link-{i}") for i in range(1, 5)]
        assert [km.store_for_peer(f"n{i}") for i in range(1, 5)] == stores  # registered once
        arrived = []
        stores[2].add_listener(arrived.append)
        km.deliver("link-3", 7, b"k" * 64)
        assert arrived == ["link-3"] and stores[2].max_block() == 7
    finally:
        km.stop()
    again = _km(tmp_path, 4)              # reopened: the same stores, the block kept
    try:
        assert again.store("link-3").max_block() == 7
    finally:
        again.stop()


def test_a_single_link_store_opens_without_a_pool(tmp_path):
    km = _km(tmp_path, 1)
    try:
        assert km.store("link-1").max_block() == -1
    finally:
        km.stop()
