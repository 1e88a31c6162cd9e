"""User/SLA database: users, their applications (SAE ids bound to a node) and SLA profiles.

SQLite in the state directory by default (``DIR/controller/users.sqlite``); the schema and the
queries are plain SQL that PostgreSQL runs unchanged (see :mod:`sdn_controller.sql_database`).
Loaded from the topology's ``slas``/``users``/``saes`` and managed with ``qkdn users``.

Schema (``docs/controller.md``)::

    sla_profiles(name PK, max_bps, min_bps, max_priority, max_sessions, idle_timeout_s,
                 allow_lower_rate, fallback)
    sla_restoration(sla_name PK -> sla_profiles, restoration_type, hold_off_ms)
    users(name PK, sla_name -> sla_profiles, revoked, revoked_reason, revoked_at)
    user_peers(user_name -> users, peer, PK(user_name, peer))      -- '*' = any user
    applications(sae_id PK, user_name -> users, node_name, node_id, revoked)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from qkdn.sla import FallbackPolicy, SlaProfile
from qkdn.topology import Topology
from sdn_controller.errors import DuplicateEntryError, InvalidEntryError, UnknownEntryError
from sdn_controller.identifiers import NodeId, SaeId
from sdn_controller.path_restoration import (
    DEFAULT_RESTORATION,
    PathRestoration,
    RestorationType,
)
from sdn_controller.sql_database import SqlDatabase, open_sqlite

ANY_PEER = "*"


@dataclass(frozen=True)
class User:
    name: str
    sla: str
    allowed_peers: tuple[str, ...] = (ANY_PEER,)
    revoked: bool = False
    revoked_reason: str | None = None

    def may_reach(self, peer_user: str) -> bool:
        return ANY_PEER in self.allowed_peers or peer_user in self.allowed_peers


@dataclass(frozen=True)
class Application:
    """An SAE bound to its user and to the node (KM) it connects through."""

    sae_id: SaeId
    user: str
    node_name: str
    node_id: NodeId | None = None
    revoked: bool = False

    def is_on(self, node: str) -> bool:
        """True if ``node`` (a node name or ``qkdn_id``) is the application's node."""
        return node == self.node_name or (self.node_id is not None and node == self.node_id)


class Directory(Protocol):
    """What access and admission control read from the user database."""

    def application(self, sae_id: str) -> Application | None: ...

    def user(self, name: str) -> User | None: ...

    def sla(self, name: str) -> SlaProfile | None: ...


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sla_profiles (
        name VARCHAR(128) PRIMARY KEY,
        max_bps BIGINT NOT NULL CHECK (max_bps > 0),
        min_bps BIGINT NOT NULL DEFAULT 0 CHECK (min_bps >= 0),
        max_priority INTEGER NOT NULL DEFAULT 0 CHECK (max_priority >= 0),
        max_sessions INTEGER NOT NULL DEFAULT 16 CHECK (max_sessions >= 1),
        idle_timeout_s INTEGER NOT NULL DEFAULT 60 CHECK (idle_timeout_s >= 1),
        allow_lower_rate BOOLEAN NOT NULL DEFAULT TRUE,
        fallback VARCHAR(32) NOT NULL DEFAULT 'qkd-only'
            CHECK (fallback IN ('qkd-only', 'hybrid', 'pqc-fallback')))""",
    """CREATE TABLE IF NOT EXISTS users (
        name VARCHAR(128) PRIMARY KEY,
        sla_name VARCHAR(128) NOT NULL REFERENCES sla_profiles(name),
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        revoked_reason VARCHAR(512),
        revoked_at VARCHAR(40))""",
    """CREATE TABLE IF NOT EXISTS user_peers (
        user_name VARCHAR(128) NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        peer VARCHAR(128) NOT NULL,
        PRIMARY KEY (user_name, peer))""",
    """CREATE TABLE IF NOT EXISTS applications (
        sae_id VARCHAR(256) PRIMARY KEY,
        user_name VARCHAR(128) NOT NULL REFERENCES users(name),
        node_name VARCHAR(128) NOT NULL,
        node_id VARCHAR(36),
        revoked BOOLEAN NOT NULL DEFAULT FALSE)""",
    "CREATE INDEX IF NOT EXISTS applications_by_user ON applications (user_name)",
    """CREATE TABLE IF NOT EXISTS sla_restoration (
        sla_name VARCHAR(128) PRIMARY KEY REFERENCES sla_profiles(name) ON DELETE CASCADE,
        restoration_type VARCHAR(16) NOT NULL DEFAULT 'AUTOMATIC'
            CHECK (restoration_type IN ('AUTOMATIC', 'MANUAL')),
        hold_off_ms INTEGER NOT NULL DEFAULT 0 CHECK (hold_off_ms >= 0))""",
)

_SLA_COLUMNS = ("name, max_bps, min_bps, max_priority, max_sessions, idle_timeout_s, "
                "allow_lower_rate, fallback")


class UserDb:
    """The user/SLA database (implements :class:`Directory`)."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        db.run_script(SCHEMA)

    @classmethod
    def open(cls, path: str | Path = ":memory:") -> UserDb:
        return cls(open_sqlite(path))

    def close(self) -> None:
        self.db.close()

    # --- SLA profiles -----------------------------------------------------------------------
    def add_sla(self, sla: SlaProfile, *, replace: bool = False) -> None:
        params = {"name": sla.name, "max_bps": sla.max_bps, "min_bps": sla.min_bps,
                  "max_priority": sla.max_priority, "max_sessions": sla.max_sessions,
                  "idle_timeout_s": sla.idle_timeout_s, "allow_lower_rate": sla.allow_lower_rate,
                  "fallback": sla.fallback.value}
        if not replace and self.sla(sla.name) is not None:
            raise DuplicateEntryError("SLA profile", sla.name)
        self.db.execute(
            f"INSERT INTO sla_profiles ({_SLA_COLUMNS}) VALUES (:name, :max_bps, :min_bps, "
            ":max_priority, :max_sessions, :idle_timeout_s, :allow_lower_rate, :fallback) "
            "ON CONFLICT (name) DO UPDATE SET max_bps = excluded.max_bps, "
            "min_bps = excluded.min_bps, max_priority = excluded.max_priority, "
            "max_sessions = excluded.max_sessions, idle_timeout_s = excluded.idle_timeout_s, "
            "allow_lower_rate = excluded.allow_lower_rate, fallback = excluded.fallback",
            params)

    def sla(self, name: str) -> SlaProfile | None:
        row = self.db.query_one(f"SELECT {_SLA_COLUMNS} FROM sla_profiles WHERE name = :name",
                                {"name": name})
        return _sla_of(row) if row else None

    def slas(self) -> list[SlaProfile]:
        return [_sla_of(r) for r in
                self.db.query(f"SELECT {_SLA_COLUMNS} FROM sla_profiles ORDER BY name")]

    def delete_sla(self, name: str) -> None:
        """Remove an SLA profile no user refers to."""
        if self.sla(name) is None:
            raise UnknownEntryError("SLA profile", name)
        users = self.db.query("SELECT name FROM users WHERE sla_name = :name ORDER BY name",
                              {"name": name})
        if users:
            raise InvalidEntryError(f"SLA profile {name!r} is used by user "
                                    f"{users[0]['name']!r}")
        with self.db.transaction():
            self.db.execute("DELETE FROM sla_restoration WHERE sla_name = :name",
                            {"name": name})
            self.db.execute("DELETE FROM sla_profiles WHERE name = :name", {"name": name})

    def restoration(self, sla: str) -> PathRestoration:
        """The path-restoration policy of an SLA profile (AUTOMATIC, 0 ms if none is set)."""
        row = self.db.query_one("SELECT restoration_type, hold_off_ms FROM sla_restoration "
                                "WHERE sla_name = :name", {"name": sla})
        if row is None:
            return DEFAULT_RESTORATION
        return PathRestoration(RestorationType(row["restoration_type"]),
                               int(row["hold_off_ms"]))

    def set_restoration(self, sla: str, policy: PathRestoration) -> None:
        if self.sla(sla) is None:
            raise UnknownEntryError("SLA profile", sla)
        self.db.execute(
            "INSERT INTO sla_restoration (sla_name, restoration_type, hold_off_ms) "
            "VALUES (:name, :kind, :hold) ON CONFLICT (sla_name) DO UPDATE SET "
            "restoration_type = excluded.restoration_type, hold_off_ms = excluded.hold_off_ms",
            {"name": sla, "kind": policy.kind.value, "hold": policy.hold_off_ms})

    # --- users ------------------------------------------------------------------------------
    def add_user(self, name: str, sla: str, allowed_peers: tuple[str, ...] = (ANY_PEER,), *,
                 replace: bool = False) -> User:
        if not name:
            raise InvalidEntryError("a user needs a name")
        if self.sla(sla) is None:
            raise UnknownEntryError("SLA profile", sla)
        if not replace and self.user(name) is not None:
            raise DuplicateEntryError("user", name)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO users (name, sla_name) VALUES (:name, :sla) "
                "ON CONFLICT (name) DO UPDATE SET sla_name = excluded.sla_name",
                {"name": name, "sla": sla})
            self.db.execute("DELETE FROM user_peers WHERE user_name = :name", {"name": name})
            for peer in dict.fromkeys(allowed_peers):
                self.db.execute("INSERT INTO user_peers (user_name, peer) VALUES (:n, :p)",
                                {"n": name, "p": peer})
        user = self.user(name)
        assert user is not None
        return user

    def user(self, name: str) -> User | None:
        row = self.db.query_one("SELECT name, sla_name, revoked, revoked_reason FROM users "
                                "WHERE name = :name", {"name": name})
        if row is None:
            return None
        peers = self.db.query("SELECT peer FROM user_peers WHERE user_name = :name "
                              "ORDER BY peer", {"name": name})
        return User(row["name"], row["sla_name"], tuple(p["peer"] for p in peers),
                    bool(row["revoked"]), row["revoked_reason"])

    def users(self) -> list[User]:
        names = self.db.query("SELECT name FROM users ORDER BY name")
        return [u for u in (self.user(r["name"]) for r in names) if u is not None]

    def revoke_user(self, name: str, reason: str = "revoked by operator", *,
                    at: str = "") -> None:
        """Revoke a user: access control refuses all its applications from now on."""
        if not self.db.execute("UPDATE users SET revoked = TRUE, revoked_reason = :reason, "
                               "revoked_at = :at WHERE name = :name",
                               {"name": name, "reason": reason, "at": at or None}):
            raise UnknownEntryError("user", name)

    def reinstate_user(self, name: str) -> None:
        if not self.db.execute("UPDATE users SET revoked = FALSE, revoked_reason = NULL, "
                               "revoked_at = NULL WHERE name = :name", {"name": name}):
            raise UnknownEntryError("user", name)

    def delete_user(self, name: str) -> None:
        """Remove a user that has no applications (its peer list goes with it)."""
        if self.user(name) is None:
            raise UnknownEntryError("user", name)
        apps = self.applications(name)
        if apps:
            raise InvalidEntryError(f"user {name!r} still has application {apps[0].sae_id!r}")
        with self.db.transaction():
            self.db.execute("DELETE FROM user_peers WHERE user_name = :name", {"name": name})
            self.db.execute("DELETE FROM users WHERE name = :name", {"name": name})

    # --- applications -----------------------------------------------------------------------
    def add_application(self, sae_id: str, user: str, node_name: str,
                        node_id: str | None = None, *, replace: bool = False) -> Application:
        if not sae_id or not node_name:
            raise InvalidEntryError("an application needs an SAE id and a node")
        if self.user(user) is None:
            raise UnknownEntryError("user", user)
        if not replace and self.application(sae_id) is not None:
            raise DuplicateEntryError("application", sae_id)
        self.db.execute(
            "INSERT INTO applications (sae_id, user_name, node_name, node_id) "
            "VALUES (:sae, :user, :node, :node_id) ON CONFLICT (sae_id) DO UPDATE SET "
            "user_name = excluded.user_name, node_name = excluded.node_name, "
            "node_id = excluded.node_id",
            {"sae": sae_id, "user": user, "node": node_name, "node_id": node_id})
        app = self.application(sae_id)
        assert app is not None
        return app

    def application(self, sae_id: str) -> Application | None:
        row = self.db.query_one("SELECT sae_id, user_name, node_name, node_id, revoked "
                                "FROM applications WHERE sae_id = :sae", {"sae": sae_id})
        return _app_of(row) if row else None

    def applications(self, user: str | None = None) -> list[Application]:
        if user is None:
            rows = self.db.query("SELECT sae_id, user_name, node_name, node_id, revoked "
                                 "FROM applications ORDER BY sae_id")
        else:
            rows = self.db.query("SELECT sae_id, user_name, node_name, node_id, revoked "
                                 "FROM applications WHERE user_name = :user ORDER BY sae_id",
                                 {"user": user})
        return [_app_of(r) for r in rows]

    def remove_application(self, sae_id: str) -> None:
        """Forget an application (its SAE id becomes unknown to access control)."""
        if not self.db.execute("DELETE FROM applications WHERE sae_id = :sae", {"sae": sae_id}):
            raise UnknownEntryError("application", sae_id)

    def revoke_application(self, sae_id: str) -> None:
        if not self.db.execute("UPDATE applications SET revoked = TRUE WHERE sae_id = :sae",
                               {"sae": sae_id}):
            raise UnknownEntryError("application", sae_id)

    def reinstate_application(self, sae_id: str) -> None:
        if not self.db.execute("UPDATE applications SET revoked = FALSE WHERE sae_id = :sae",
                               {"sae": sae_id}):
            raise UnknownEntryError("application", sae_id)

    def delete_application(self, sae_id: str) -> None:
        if not self.db.execute("DELETE FROM applications WHERE sae_id = :sae", {"sae": sae_id}):
            raise UnknownEntryError("application", sae_id)

    # --- topology ---------------------------------------------------------------------------
    def load_topology(self, topology: Topology) -> None:
        """Insert or update the topology's SLA profiles, users and SAEs (one transaction)."""
        with self.db.transaction():
            for sla in topology.slas:
                self.add_sla(sla, replace=True)
            for user in topology.users:
                self.add_user(user.name, user.sla, user.allowed_peers, replace=True)
                if user.revoked:
                    self.revoke_user(user.name, "revoked in the topology file")
            for sae in topology.saes:
                self.add_application(sae.sae_id, sae.user, sae.node,
                                     topology.node(sae.node).qkdn_id, replace=True)


def _sla_of(row: dict) -> SlaProfile:
    return SlaProfile(row["name"], int(row["max_bps"]), int(row["min_bps"]),
                      int(row["max_priority"]), int(row["max_sessions"]),
                      int(row["idle_timeout_s"]), bool(row["allow_lower_rate"]),
                      FallbackPolicy(row["fallback"]))


def _app_of(row: dict) -> Application:
    return Application(SaeId(row["sae_id"]), row["user_name"], row["node_name"],
                       NodeId(row["node_id"]) if row["node_id"] else None, bool(row["revoked"]))
