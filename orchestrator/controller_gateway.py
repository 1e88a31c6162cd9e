"""The orchestrator's view of the controller: REST-shaped reads and writes mapped one to one
onto the north-bound YANG trees (``qkd_network``, ``qkd_access``) and RPCs.

Reads are ``<get>`` with a subtree filter (config and state); writes are one ``<edit-config>``
each. Returned values are plain JSON (:mod:`orchestrator.nbi_data`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import NotFound
from orchestrator.nbi_client import NbiClient
from orchestrator.nbi_data import NbiModel
from orchestrator.nbi_payloads import (
    ACCESS_LISTS,
    EditOperation,
    access_edit,
    access_filter,
    close_svc_link_rpc,
    network_filter,
    node_filter,
    phys_link_edit,
    phys_link_filter,
    restore_svc_link_rpc,
    svc_link_filter,
)
from qkdn.namespaces import QKDN_INV_NS


def _dig(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        if not isinstance(data, dict):
            return None
        data = data.get(name)  # type: ignore[assignment]
    return data


class ControllerGateway:
    """REST resources ↔ NETCONF operations on the controller's north-bound interface."""

    def __init__(self, client: NbiClient, model: NbiModel) -> None:
        self.client = client
        self.model = model

    # ------------------------------------------------------------------ topology

    def _network(self, flt: Any) -> dict[str, Any]:
        data = self.model.data_to_json(self.client.get(flt))
        return data.get("qkd_network") or {}

    def network(self) -> dict[str, Any]:
        network = self._network(network_filter())
        network.setdefault("sdqkd_nodes", {}).setdefault("sdqkd_node", [])
        links = network.setdefault("qkd_links", {})
        links.setdefault("phys_links", {}).setdefault("phys_link", [])
        links.setdefault("svc_links", {}).setdefault("svc_link", [])
        return {"qkd_network": network}

    def nodes(self) -> list[dict[str, Any]]:
        return _dig(self._network(node_filter()), "sdqkd_nodes", "sdqkd_node") or []

    def node(self, qkdn_id: str) -> dict[str, Any]:
        return _one(_dig(self._network(node_filter(qkdn_id)), "sdqkd_nodes", "sdqkd_node"),
                    "qkdn_id", qkdn_id, "node")

    def phys_links(self) -> list[dict[str, Any]]:
        return _dig(self._network(phys_link_filter()), "qkd_links", "phys_links",
                    "phys_link") or []

    def phys_link(self, qkdl_id: str) -> dict[str, Any]:
        return _one(_dig(self._network(phys_link_filter(qkdl_id)), "qkd_links", "phys_links",
                         "phys_link"), "qkdl_id", qkdl_id, "physical link")

    def update_phys_link(self, qkdl_id: str, details: dict[str, Any]) -> dict[str, Any]:
        self.phys_link(qkdl_id)  # 404 for an unknown link (a merge would create it)
        self.client.edit_config(phys_link_edit(qkdl_id, details))
        return self.phys_link(qkdl_id)

    def svc_links(self) -> list[dict[str, Any]]:
        return _dig(self._network(svc_link_filter()), "qkd_links", "svc_links",
                    "svc_link") or []

    def svc_link(self, qkdl_id: str) -> dict[str, Any]:
        return _one(_dig(self._network(svc_link_filter(qkdl_id)), "qkd_links", "svc_links",
                         "svc_link"), "qkdl_id", qkdl_id, "session")

    def close_svc_link(self, qkdl_id: str, reason: str | None) -> None:
        self.client.rpc(close_svc_link_rpc(qkdl_id, reason))

    def restore_svc_link(self, qkdl_id: str) -> dict[str, Any]:
        reply = self.client.rpc(restore_svc_link_rpc(qkdl_id))
        out = self.model.rpc_output_to_json("restore_svc_link", QKDN_INV_NS, reply)
        return out.get("paths") or {}

    # ------------------------------------------------------------------ access

    def access_list(self, collection: str) -> list[dict[str, Any]]:
        spec = ACCESS_LISTS[collection]
        data = self.model.data_to_json(self.client.get(access_filter(collection)))
        return _dig(data, "qkd_access", spec.container, spec.entry) or []

    def access_entry(self, collection: str, key: str) -> dict[str, Any]:
        spec = ACCESS_LISTS[collection]
        data = self.model.data_to_json(self.client.get(access_filter(collection, key)))
        return _one(_dig(data, "qkd_access", spec.container, spec.entry), spec.key, key,
                    spec.entry.replace("_", " "))

    def create_access(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = ACCESS_LISTS[collection]
        self.client.edit_config(access_edit(collection, body, EditOperation.CREATE))
        return self.access_entry(collection, str(body[spec.key]))

    def update_access(self, collection: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = ACCESS_LISTS[collection]
        self.access_entry(collection, key)  # 404 for an unknown entry (merge would create it)
        self.client.edit_config(access_edit(collection, {**body, spec.key: key},
                                            EditOperation.MERGE))
        return self.access_entry(collection, key)

    def delete_access(self, collection: str, key: str) -> None:
        spec = ACCESS_LISTS[collection]
        self.access_entry(collection, key)  # 404 for an unknown entry
        # data-missing now means something still refers to the entry: 409
        self.client.edit_config(access_edit(collection, {spec.key: key}, EditOperation.DELETE))


def _one(entries: list[dict[str, Any]] | None, key: str, value: str,
         what: str) -> dict[str, Any]:
    for entry in entries or []:
        if str(entry.get(key)).lower() == value.lower():
            return entry
    raise NotFound(f"no {what} {value}")
