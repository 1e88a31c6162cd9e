"""The KM's forwarding table, built from the node's running configuration (RFC 7951 JSON of
``etsi-qkd-sdn-node:qkd_node``): pure functions, no I/O.

* every ``qkd_app`` is a session (``app_id`` = session ID = Key_stream_ID): its SAEs
  (``server_app_id`` / ``client_app_id``), priority, QoS and our ``qkdn-key-manager``
  extension leaves (token bucket, idle timeout, role);
* every VIRT ``qkd_link`` that names the session (in ``qkdl_applications`` or in the app's
  ``backing_qkdl_id``) gives this KM's neighbours on the path: ``virt_prev_hop`` and
  ``virt_next_hop`` (qkdn_ids). A PHYS backing link makes the session direct (neighbour =
  the app's ``remote_qkdn_id`` or the link's remote end).

A KM never learns the whole path: a message that arrives from one neighbour goes to the other;
with no other neighbour this KM is the endpoint.

Multipath (``docs/adr/0011-multipath.md``): a session split over several route legs has one
VIRT link per leg crossing this node; each becomes a :class:`ForwardingRule` whose ``leg`` is
that link's ``qkdl_id``. ``ForwardingTable.legs[app_id]`` holds them all (ordered by leg id);
``ForwardingTable.rules[app_id]`` is the first, for callers that need only one. Relay messages
of a multipath session name their leg, so a KM on two legs knows which one a message follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kms.errors import NoRoute

NODE = "etsi-qkd-sdn-node:qkd_node"
KM_MODULE = "qkdn-key-manager"
TYPES_MODULE = "etsi-qkd-node-types"

# Extension nodes (yang/qkdn-key-manager.yang); the one place they're spelled.
EXT_SESSION = f"{KM_MODULE}:km_session"     # in qkd_app: role, token_bucket{bucket_size, token_rate},
                                            # idle_timeout (s), key_chunk_size (bytes),
                                            # fallback_policy
EXT_KEY_MANAGER = f"{KM_MODULE}:key_manager"  # in qkd_node: key_store_capacity (bits)
EXT_KEY_STORE = f"{KM_MODULE}:key_store"      # in qkd_link/qkdl_performance (state)


class Role(str, Enum):
    """This KM's role for a session."""

    SOURCE = "source"
    RELAY = "relay"
    DESTINATION = "destination"


@dataclass(frozen=True)
class SessionConfig:
    """What the controller (or an operator) configured for one session on this node."""

    app_id: str
    sae_ids: frozenset[str]
    priority: int = 0
    max_bandwidth: int | None = None
    min_bandwidth: int | None = None
    ttl: int | None = None
    bucket_size: int | None = None
    token_rate: int | None = None
    idle_timeout: float | None = None
    role: Role | None = None
    key_chunk_size: int | None = None
    backing_links: tuple[str, ...] = ()
    remote_qkdn_id: str | None = None
    #: ``km_session/fallback_policy`` (ADR 0009): qkd-only, hybrid or pqc-fallback
    fallback_policy: str = "qkd-only"


@dataclass(frozen=True)
class ForwardingRule:
    """This KM's neighbours on a session's path (qkdn_ids); None at an endpoint."""

    app_id: str
    prev_hop: str | None
    next_hop: str | None
    bandwidth: int | None = None
    #: the VIRT link (qkdl_id) this rule comes from: the route leg; None for a direct session
    leg: str | None = None

    def forward_from(self, sender: str | None) -> str | None:
        """The neighbour a message from ``sender`` (None = this KM originates) goes to."""
        neighbours = [h for h in (self.prev_hop, self.next_hop) if h]
        if sender is None:
            if len(neighbours) != 1:
                raise NoRoute(f"session {self.app_id}: this KM is not an endpoint")
            return neighbours[0]
        others = [h for h in neighbours if h.lower() != sender.lower()]
        if len(others) == len(neighbours):
            raise NoRoute(f"session {self.app_id}: {sender} is not a neighbour on the path")
        return others[0] if others else None


@dataclass(frozen=True)
class ForwardingTable:
    sessions: Mapping[str, SessionConfig] = field(default_factory=dict)
    rules: Mapping[str, ForwardingRule] = field(default_factory=dict)
    key_store_capacity_bits: int | None = None
    #: every leg of every session crossing this KM (``rules[app_id]`` is ``legs[app_id][0]``)
    legs: Mapping[str, tuple[ForwardingRule, ...]] = field(default_factory=dict)

    def session_for_pair(self, sae_a: str, sae_b: str) -> SessionConfig | None:
        """The configured session whose SAEs include both (None if there is none)."""
        for session in self.sessions.values():
            if {sae_a, sae_b} <= session.sae_ids:
                return session
        return None

    def rule(self, app_id: str, leg: str | None = None) -> ForwardingRule:
        """The rule of ``app_id`` (of its route leg ``leg`` when given)."""
        if leg is None:
            try:
                return self.rules[app_id]
            except KeyError:
                raise NoRoute(f"no forwarding rule for session {app_id}") from None
        for rule in self.legs.get(app_id, ()):
            if rule.leg == str(leg).lower():
                return rule
        raise NoRoute(f"no forwarding rule for leg {leg} of session {app_id}")

    def legs_of(self, app_id: str) -> tuple[ForwardingRule, ...]:
        """Every leg of ``app_id`` through this KM (one for a single-path session)."""
        legs = self.legs.get(app_id)
        if legs:
            return legs
        rule = self.rules.get(app_id)
        return (rule,) if rule is not None else ()

    def is_multipath(self, app_id: str) -> bool:
        return len(self.legs.get(app_id, ())) > 1


def _identity(value: Any) -> str:
    """``etsi-qkd-node-types:VIRT`` → ``VIRT``."""
    return str(value).split(":", 1)[-1] if value is not None else ""


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def parse_session(app: Mapping[str, Any]) -> SessionConfig:
    """One ``qkd_app`` entry (RFC 7951 JSON) → :class:`SessionConfig`."""
    qos = app.get("app_qos", {})
    km = app.get(EXT_SESSION, {})
    bucket = km.get("token_bucket", {})
    saes = set(app.get("client_app_id", []))
    if app.get("server_app_id"):
        saes.add(app["server_app_id"])
    role = km.get("role")
    timeout = km.get("idle_timeout")
    return SessionConfig(
        app_id=str(app["app_id"]).lower(),
        sae_ids=frozenset(saes),
        priority=int(app.get("app_priority", 0)),
        max_bandwidth=_int(qos.get("max_bandwidth")),
        min_bandwidth=_int(qos.get("min_bandwidth")),
        ttl=_int(qos.get("ttl")),
        bucket_size=_int(bucket.get("bucket_size")),
        token_rate=_int(bucket.get("token_rate")),
        idle_timeout=float(timeout) if timeout is not None else None,
        role=Role(_identity(role)) if role else None,
        key_chunk_size=_int(km.get("key_chunk_size")),
        backing_links=tuple(str(x).lower() for x in app.get("backing_qkdl_id", [])),
        remote_qkdn_id=str(app["remote_qkdn_id"]).lower() if app.get("remote_qkdn_id") else None,
        fallback_policy=str(km.get("fallback_policy") or "qkd-only").split(":", 1)[-1],
    )


class SessionParseCache:
    """:func:`parse_session` results of the last configuration's ``qkd_app`` entries, by
    entry object. The datastore's snapshots are copy-on-write (an entry a commit did not
    touch is the same object in the next snapshot), so with a cache a commit parses only the
    entries it added or changed: parsing every session per commit cost ~20 µs each (~4–6 ms
    per commit at 200 sessions on a node, docs/agent.md)."""

    def __init__(self) -> None:
        # id(entry) -> (entry, parsed); the entry is kept so that its id cannot be reused
        self._parsed: dict[int, tuple[Mapping[str, Any], SessionConfig]] = {}

    def parse_all(self, apps: list[Mapping[str, Any]]) -> list[SessionConfig]:
        """Every entry parsed (cached ones reused); the cache then holds these entries only."""
        fresh: dict[int, tuple[Mapping[str, Any], SessionConfig]] = {}
        out = []
        for app in apps:
            hit = self._parsed.get(id(app))
            parsed = hit[1] if hit is not None and hit[0] is app else parse_session(app)
            fresh[id(app)] = (app, parsed)
            out.append(parsed)
        self._parsed = fresh
        return out


def build_forwarding_table(running: Mapping[str, Any], *,
                           parsed: SessionParseCache | None = None) -> ForwardingTable:
    """Build the table from the running configuration (RFC 7951 JSON). ``parsed``: a cache
    kept across the commits of one datastore (only new or changed entries are parsed)."""
    node = running.get(NODE, {})
    apps = node.get("qkd_applications", {}).get("qkd_app", [])
    links = {str(link["qkdl_id"]).lower(): link
             for link in node.get("qkd_links", {}).get("qkd_link", [])}
    parsed_apps = parsed.parse_all(apps) if parsed is not None else map(parse_session, apps)
    sessions = {s.app_id: s for s in parsed_apps}
    # sessions by backing link, once (one scan of every session per virtual link made each
    # commit quadratic in the sessions a node carries)
    backed_by: dict[str, set[str]] = {}
    for session in sessions.values():
        for backing in session.backing_links:
            backed_by.setdefault(backing, set()).add(session.app_id)
    legs: dict[str, list[ForwardingRule]] = {}
    for qkdl_id, link in sorted(links.items()):
        if _identity(link.get("qkdl_type")) != "VIRT":
            continue
        app_ids = {str(a).lower() for a in link.get("qkdl_applications", [])}
        app_ids |= backed_by.get(qkdl_id, set())
        next_hops = link.get("virt_next_hop", [])
        for app_id in app_ids:
            legs.setdefault(app_id, []).append(ForwardingRule(
                app_id=app_id,
                prev_hop=str(link["virt_prev_hop"]).lower() if link.get("virt_prev_hop") else None,
                next_hop=str(next_hops[0]).lower() if next_hops else None,
                bandwidth=_int(link.get("virt_bandwidth")),
                leg=qkdl_id,
            ))
    rules: dict[str, ForwardingRule] = {app_id: rules_[0] for app_id, rules_ in legs.items()}
    for session in sessions.values():
        if session.app_id in rules:
            continue
        for link_id in session.backing_links:
            link = links.get(link_id)
            if link is not None and _identity(link.get("qkdl_type")) == "PHYS":
                remote = session.remote_qkdn_id or link.get("qkdl_remote", {}).get("qkdn_id")
                if remote:
                    rules[session.app_id] = ForwardingRule(session.app_id, None, str(remote).lower())
                    break
        if session.app_id not in rules and session.remote_qkdn_id and not session.backing_links:
            rules[session.app_id] = ForwardingRule(session.app_id, None, session.remote_qkdn_id)
    capacity = node.get(EXT_KEY_MANAGER, {}).get("key_store_capacity")
    return ForwardingTable(sessions=sessions, rules=rules,
                           key_store_capacity_bits=int(capacity) if capacity is not None else None,
                           legs={app_id: tuple(rules_) for app_id, rules_ in legs.items()})
