"""Shared test double of the controller tests: a node configurator held in memory."""

import threading
import time

import pytest
from lxml import etree

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
E = "urn:etsi:qkd:yang:etsi-qkd-node"
KM = "urn:qkdn:yang:qkdn-key-manager"


class InMemoryNode:
    """A node's qkd_applications/qkd_links as a dict, with edit-config's replace/delete/remove
    semantics (delete of a missing entry is an error, remove is not, as in NETCONF)."""

    def __init__(self, node_id, *, fail_apply=False, fail_rollback=False, delay=0.0):
        self.node_id = node_id
        self.entries = {}
        self.fail_apply, self.fail_rollback, self.delay = fail_apply, fail_rollback, delay
        self.calls = []
        self.lock = threading.Lock()

    def edit_config(self, config):
        time.sleep(self.delay)
        self.calls.append("edit")
        if self.fail_apply:
            raise RuntimeError("rpc-error: operation-failed")
        self._apply(config)

    def rollback(self, undo):
        self.calls.append("rollback")
        if self.fail_rollback:
            raise RuntimeError("session lost")
        self._apply(undo)

    def apps(self):
        return {k[1]: etree.fromstring(v) for k, v in self.entries.items() if k[0] == "qkd_app"}

    def refusals(self):
        return {k[1]: etree.fromstring(v) for k, v in self.entries.items() if k[0] == "refusal"}

    def links(self):
        return {k[1]: etree.fromstring(v) for k, v in self.entries.items() if k[0] == "qkd_link"}

    def _apply(self, config):
        node = config.find(f"{{{E}}}qkd_node")
        assert node.findtext(f"{{{E}}}qkdn_id") == self.node_id
        with self.lock:
            staged = dict(self.entries)
            for tag, key, ns in (("qkd_app", "app_id", E), ("qkd_link", "qkdl_id", E),
                                 ("refusal", "request_id", KM)):
                for entry in node.iter(f"{{{ns}}}{tag}"):
                    ident = (tag, entry.findtext(f"{{{ns}}}{key}"))
                    op = entry.get(f"{{{NC}}}operation", "merge")
                    if op == "delete":
                        if ident not in staged:
                            raise RuntimeError(f"data-missing {ident}")
                        del staged[ident]
                    elif op == "remove":   # RFC 6241: deleted if present, else nothing
                        staged.pop(ident, None)
                    else:
                        staged[ident] = etree.tostring(entry)
            self.entries = staged


@pytest.fixture
def memory_node():
    return InMemoryNode
