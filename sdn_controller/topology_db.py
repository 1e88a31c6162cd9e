"""Topology database: nodes, interfaces, physical links and their live metrics.

Built from each agent's ETSI 015 ``qkd_node`` (``get`` replies, XML or RFC 7951 JSON) and
kept current from notifications (``sdqkdn_link_perf_update``, ``sdqkdn_link_down``,
``sdqkdn_link_overloaded``, ``sdqkdn_interface_down``/``_out``, ``alarm``, ``event``).
Persisted in SQLite (``DIR/controller/topology.sqlite``; plain portable SQL) with an in-memory
copy of the links, which is what the routing element reads (:meth:`TopologyDb.links`).

Schema (``docs/controller.md``)::

    nodes(qkdn_id PK, name, status, location, version, last_seen)
    interfaces(qkdn_id, qkdi_id, model, qkdi_type, role, status, PK(qkdn_id, qkdi_id))
    links(qkdl_id PK, node_a, qkdi_a, node_b, qkdi_b, status, enabled, skr, eskr,
          expected_consumption, qber, stored_bits, overloaded, down_reason, flag_reason,
          updated_at)

Only PHYS links are kept: virtual links are the controller's own configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree

from sdn_controller.errors import TopologyDataError, UnknownEntryError
from sdn_controller.identifiers import LinkId, NodeId
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.qkd_node_data import notification_from_message, qkd_node_from_reply
from sdn_controller.sql_database import SqlDatabase, open_sqlite

#: Where the key-store level (bits) sits under ``qkdl_performance``: ETSI 015 has none; our
#: extension ``qkdn-key-manager`` adds ``key_store/stored_key_bits`` (config false).
KEY_STORE_CONTAINER = "key_store"
STORED_KEY_LEAF = "stored_key_bits"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS nodes (
        qkdn_id VARCHAR(36) PRIMARY KEY,
        name VARCHAR(128),
        status VARCHAR(16),
        location VARCHAR(256),
        version VARCHAR(128),
        last_seen DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS interfaces (
        qkdn_id VARCHAR(36) NOT NULL REFERENCES nodes(qkdn_id) ON DELETE CASCADE,
        qkdi_id BIGINT NOT NULL,
        model VARCHAR(256),
        qkdi_type VARCHAR(32),
        role VARCHAR(16),
        status VARCHAR(16),
        PRIMARY KEY (qkdn_id, qkdi_id))""",
    """CREATE TABLE IF NOT EXISTS links (
        qkdl_id VARCHAR(36) PRIMARY KEY,
        node_a VARCHAR(36) NOT NULL,
        qkdi_a BIGINT,
        node_b VARCHAR(36) NOT NULL,
        qkdi_b BIGINT,
        status VARCHAR(16) NOT NULL,
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        skr BIGINT NOT NULL DEFAULT 0,
        eskr BIGINT NOT NULL DEFAULT 0,
        expected_consumption BIGINT NOT NULL DEFAULT 0,
        qber DOUBLE PRECISION,
        stored_bits BIGINT,
        overloaded BOOLEAN NOT NULL DEFAULT FALSE,
        down_reason VARCHAR(512),
        flag_reason VARCHAR(512),
        updated_at DOUBLE PRECISION NOT NULL DEFAULT 0)""",
)

_LINK_COLUMNS = ("qkdl_id", "node_a", "qkdi_a", "node_b", "qkdi_b", "status", "enabled", "skr",
                 "eskr", "expected_consumption", "qber", "stored_bits", "overloaded",
                 "down_reason", "flag_reason", "updated_at")


@dataclass(frozen=True)
class NodeInfo:
    qkdn_id: NodeId
    name: str | None
    status: str | None
    location: str | None
    version: str | None
    last_seen: float | None


@dataclass(frozen=True)
class InterfaceInfo:
    qkdn_id: NodeId
    qkdi_id: int
    model: str | None
    qkdi_type: str | None
    role: str | None
    status: str | None


@dataclass(frozen=True)
class LinkUpdate:
    """A change to one link; ``event`` names its cause (notification name or ``get``)."""

    previous: LinkMetrics | None
    current: LinkMetrics
    event: str
    message: str = ""
    severity: str | None = None


class TopologyDb:
    def __init__(self, db: SqlDatabase, *, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock
        db.run_script(SCHEMA)
        self._links: dict[LinkId, LinkMetrics] = {}
        self._interfaces: dict[tuple[NodeId, int], LinkId] = {}
        self._link_ifaces: dict[LinkId, tuple[int | None, int | None]] = {}
        for row in db.query(f"SELECT {', '.join(_LINK_COLUMNS)} FROM links"):
            self._links[row["qkdl_id"]] = _metrics_of(row)
            self._index(row["qkdl_id"], row["node_a"], row["qkdi_a"], row["node_b"],
                        row["qkdi_b"])

    @classmethod
    def open(cls, path: str | Path = ":memory:", *, clock: Callable[[], float]) -> TopologyDb:
        return cls(open_sqlite(path), clock=clock)

    def close(self) -> None:
        self.db.close()

    # --- reads ------------------------------------------------------------------------------
    def links(self) -> list[LinkMetrics]:
        return list(self._links.values())

    def link(self, qkdl_id: str) -> LinkMetrics:
        try:
            return self._links[LinkId(qkdl_id)]
        except KeyError:
            raise UnknownEntryError("link", qkdl_id) from None

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(**r) for r in self.db.query(
            "SELECT qkdn_id, name, status, location, version, last_seen FROM nodes "
            "ORDER BY name, qkdn_id")]

    def interfaces(self, qkdn_id: str | None = None) -> list[InterfaceInfo]:
        sql = "SELECT qkdn_id, qkdi_id, model, qkdi_type, role, status FROM interfaces"
        if qkdn_id is None:
            return [InterfaceInfo(**r) for r in self.db.query(sql + " ORDER BY qkdn_id, qkdi_id")]
        return [InterfaceInfo(**r) for r in self.db.query(
            sql + " WHERE qkdn_id = :n ORDER BY qkdi_id", {"n": qkdn_id})]

    # --- writes -----------------------------------------------------------------------------
    def name_node(self, qkdn_id: str, name: str) -> None:
        """Record a node's name (from the topology file) before or after its data arrives."""
        self.db.execute(
            "INSERT INTO nodes (qkdn_id, name) VALUES (:id, :name) "
            "ON CONFLICT (qkdn_id) DO UPDATE SET name = excluded.name",
            {"id": qkdn_id, "name": name})

    def ingest_node(self, reply: str | bytes | etree._Element | Mapping[str, Any]
                    ) -> list[LinkUpdate]:
        """Take in an agent's ``qkd_node`` (get reply, XML or JSON); return link changes."""
        return self.ingest_qkd_node(qkd_node_from_reply(reply))

    def ingest_qkd_node(self, node: Mapping[str, Any]) -> list[LinkUpdate]:
        """:meth:`ingest_node` of a ``qkd_node`` already read by
        :func:`~sdn_controller.qkd_node_data.qkd_node_from_reply` (normalised): the
        controller reads each periodic ``get`` once for the topology and for its orphans."""
        node_id = NodeId(str(node["qkdn_id"]))
        now = self.clock()
        updates = []
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO nodes (qkdn_id, status, location, version, last_seen) "
                "VALUES (:id, :status, :location, :version, :seen) "
                "ON CONFLICT (qkdn_id) DO UPDATE SET status = excluded.status, "
                "location = excluded.location, version = excluded.version, "
                "last_seen = excluded.last_seen",
                {"id": node_id, "status": node.get("qkdn_status"),
                 "location": node.get("qkdn_location_id"), "version": node.get("qkdn_version"),
                 "seen": now})
            for iface in (node.get("qkd_interfaces") or {}).get("qkd_interface", []):
                caps = iface.get("qkdi_capabilities") or {}
                self.db.execute(
                    "INSERT INTO interfaces (qkdn_id, qkdi_id, model, qkdi_type, role, status) "
                    "VALUES (:n, :i, :model, :type, :role, :status) "
                    "ON CONFLICT (qkdn_id, qkdi_id) DO UPDATE SET model = excluded.model, "
                    "qkdi_type = excluded.qkdi_type, role = excluded.role, "
                    "status = excluded.status",
                    {"n": node_id, "i": _int(iface.get("qkdi_id"), "qkdi_id"),
                     "model": iface.get("qkdi_model"), "type": iface.get("qkdi_type"),
                     "role": caps.get("role_support"), "status": iface.get("qkdi_status")})
            for link in (node.get("qkd_links") or {}).get("qkd_link", []):
                if link.get("qkdl_type", "PHYS") != "PHYS":
                    continue
                update = self._ingest_link(node_id, link, now)
                if update is not None:
                    updates.append(update)
        return updates

    def apply_notification(self, message: str | bytes | etree._Element | Mapping[str, Any], *,
                           node_id: str) -> list[LinkUpdate]:
        """Apply one notification from ``node_id``'s agent; return the link changes."""
        name, body, _ = notification_from_message(message)
        now = self.clock()
        if name in ("sdqkdn_link_perf_update", "sdqkdn_link_overloaded", "sdqkdn_link_down"):
            link = body.get("qkd_link") or {}
            qkdl_id = str(link.get("qkdl_id", ""))
            if qkdl_id not in self._links:
                return []  # a virtual link, or one not discovered yet
            perf = link.get("performance") or {}
            changes: dict[str, Any] = {"updated_at": now}
            if name == "sdqkdn_link_down":
                changes.update(status=LinkStatus.OFF,
                               down_reason=str(link.get("reason") or "link down"))
            else:
                changes.update(_performance(perf))
                changes["overloaded"] = name == "sdqkdn_link_overloaded"
            return [self._update(qkdl_id, changes, name, str(link.get("reason") or ""))]
        if name in ("alarm", "event"):
            link = body.get("link") or {}
            qkdl_id = str(link.get("qkdl_id", ""))
            if qkdl_id not in self._links:
                return []
            changes = {"updated_at": now}
            if link.get("qkdl_status"):
                changes.update(_status_changes(str(link["qkdl_status"]), "alarm: "
                                               + str(link.get("message") or "link status")))
            return [self._update(qkdl_id, changes, name, str(link.get("message") or ""),
                                 link.get("severity"))]
        if name in ("sdqkdn_interface_down", "sdqkdn_interface_out"):
            iface = body.get("qkd_interface") or {}
            qkdi_id = _int(iface.get("qkdi_id"), "qkdi_id")
            status = "FAILED" if name == "sdqkdn_interface_down" else "DISABLED"
            self.db.execute("UPDATE interfaces SET status = :s WHERE qkdn_id = :n AND "
                            "qkdi_id = :i", {"s": status, "n": node_id, "i": qkdi_id})
            found = self._interfaces.get((NodeId(node_id), qkdi_id))
            if found is None:
                return []
            qkdl_id = found
            reason = str(iface.get("reason") or name.replace("sdqkdn_", "").replace("_", " "))
            return [self._update(qkdl_id, {"status": LinkStatus.OFF, "down_reason": reason,
                                           "updated_at": now}, name, reason)]
        return []  # application notifications are admission control's business

    def set_flag(self, qkdl_id: str, reason: str | None) -> LinkMetrics:
        """Mark a link unusable (``reason``) or usable again (None) — monitoring's verdict."""
        self.link(qkdl_id)
        return self._update(qkdl_id, {"flag_reason": reason}, "monitoring").current

    def set_enabled(self, qkdl_id: str, enabled: bool) -> LinkMetrics:
        """Record ``qkdl_enable`` as the controller just configured it (the agents' next
        ``get`` reports the same)."""
        self.link(qkdl_id)
        return self._update(qkdl_id, {"enabled": enabled}, "qkdl_enable").current

    def set_stored_bits(self, qkdl_id: str, bits: int | None) -> LinkMetrics:
        self.link(qkdl_id)
        return self._update(qkdl_id, {"stored_bits": bits, "updated_at": self.clock()},
                            "key-store").current

    # --- internals --------------------------------------------------------------------------
    def _ingest_link(self, node_id: NodeId, link: Mapping[str, Any], now: float
                     ) -> LinkUpdate | None:
        qkdl_id = LinkId(str(link.get("qkdl_id") or ""))
        if not qkdl_id:
            raise TopologyDataError("qkd_link without qkdl_id")
        local = link.get("qkdl_local") or {}
        remote = link.get("qkdl_remote") or {}
        local_node = NodeId(str(local.get("qkdn_id") or node_id))
        remote_node = remote.get("qkdn_id")
        if not remote_node:
            raise TopologyDataError(f"PHYS link {qkdl_id} without qkdl_remote/qkdn_id")
        local_if = _opt_int(local.get("qkdi_id"))
        remote_if = _opt_int(remote.get("qkdi_id"))
        previous = self._links.get(qkdl_id)
        if previous is not None and {previous.node_a, previous.node_b} == {local_node,
                                                                            remote_node}:
            a, b = previous.node_a, previous.node_b
        elif link.get("phys_qkd_role") == "RECEIVER":
            a, b = NodeId(str(remote_node)), local_node
        else:
            a, b = local_node, NodeId(str(remote_node))
        if_a, if_b = (local_if, remote_if) if a == local_node else (remote_if, local_if)
        changes: dict[str, Any] = {"updated_at": now,
                                   "enabled": _bool(link.get("qkdl_enable", True))}
        if link.get("qkdl_status"):
            changes.update(_status_changes(str(link["qkdl_status"]), "link reported down"))
        changes.update(_performance(link.get("qkdl_performance") or {}))
        base = previous if previous is not None else LinkMetrics(qkdl_id, a, b)
        base = replace(base, node_a=a, node_b=b)
        if previous is not None and previous.down_reason and "down_reason" not in changes:
            changes["down_reason"] = previous.down_reason
        self._index(qkdl_id, a, if_a, b, if_b)
        return self._store(previous, replace(base, **changes), "get")

    def _update(self, qkdl_id: str, changes: Mapping[str, Any], event: str, message: str = "",
                severity: Any = None) -> LinkUpdate:
        previous = self._links[LinkId(qkdl_id)]
        return self._store(previous, replace(previous, **changes), event, message,
                           str(severity) if severity else None)

    def _store(self, previous: LinkMetrics | None, current: LinkMetrics, event: str,
               message: str = "", severity: str | None = None) -> LinkUpdate:
        if_a, if_b = self._link_ifaces.get(current.qkdl_id, (None, None))
        row = {"qkdl_id": current.qkdl_id, "node_a": current.node_a, "qkdi_a": if_a,
               "node_b": current.node_b, "qkdi_b": if_b, "status": current.status.value,
               "enabled": current.enabled, "skr": current.skr, "eskr": current.eskr,
               "expected_consumption": current.expected_consumption, "qber": current.qber,
               "stored_bits": current.stored_bits, "overloaded": current.overloaded,
               "down_reason": current.down_reason, "flag_reason": current.flag_reason,
               "updated_at": current.updated_at}
        cols = ", ".join(_LINK_COLUMNS)
        values = ", ".join(f":{c}" for c in _LINK_COLUMNS)
        sets = ", ".join(f"{c} = excluded.{c}" for c in _LINK_COLUMNS[1:])
        self.db.execute(f"INSERT INTO links ({cols}) VALUES ({values}) "
                        f"ON CONFLICT (qkdl_id) DO UPDATE SET {sets}", row)
        self._links[current.qkdl_id] = current
        return LinkUpdate(previous, current, event, message, severity)

    def _index(self, qkdl_id: str, a: str, if_a: Any, b: str, if_b: Any) -> None:
        link_id = LinkId(qkdl_id)
        old_a, old_b = self._link_ifaces.get(link_id, (None, None))
        if_a = if_a if if_a is not None else old_a
        if_b = if_b if if_b is not None else old_b
        self._link_ifaces[link_id] = (if_a, if_b)
        if if_a is not None:
            self._interfaces[(NodeId(a), int(if_a))] = link_id
        if if_b is not None:
            self._interfaces[(NodeId(b), int(if_b))] = link_id


def _status_changes(status: str, down_reason: str) -> dict[str, Any]:
    try:
        value = LinkStatus(status)
    except ValueError:
        raise TopologyDataError(f"unknown link status {status!r}") from None
    changes: dict[str, Any] = {"status": value}
    if value in (LinkStatus.ACTIVE, LinkStatus.PASSIVE):
        changes["down_reason"] = None  # the agent says it works again
    elif value is LinkStatus.OFF:
        changes["down_reason"] = down_reason
    return changes


def _performance(perf: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for leaf in ("skr", "eskr", "expected_consumption"):
        if perf.get(leaf) not in (None, ""):
            changes[leaf] = _int(perf[leaf], leaf)
    for item in perf.get("phys_perf") or []:
        if item.get("perf_type") == "QBER" and item.get("value") not in (None, ""):
            changes["qber"] = _decimal(item["value"], "QBER")
    store = perf.get(KEY_STORE_CONTAINER)
    if isinstance(store, Mapping) and store.get(STORED_KEY_LEAF) not in (None, ""):
        changes["stored_bits"] = _int(store[STORED_KEY_LEAF], STORED_KEY_LEAF)
    return changes


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TopologyDataError(f"{what}: {value!r} is not an integer") from None


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "") else _int(value, "qkdi_id")


def _decimal(value: Any, what: str) -> float:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise TopologyDataError(f"{what}: {value!r} is not a decimal") from None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _metrics_of(row: Mapping[str, Any]) -> LinkMetrics:
    return LinkMetrics(LinkId(row["qkdl_id"]), NodeId(row["node_a"]), NodeId(row["node_b"]),
                       LinkStatus(row["status"]), bool(row["enabled"]), int(row["skr"]),
                       int(row["eskr"]), int(row["expected_consumption"]),
                       None if row["qber"] is None else float(row["qber"]),
                       None if row["stored_bits"] is None else int(row["stored_bits"]),
                       bool(row["overloaded"]), row["down_reason"], row["flag_reason"],
                       float(row["updated_at"]))

