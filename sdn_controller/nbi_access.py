"""North-bound ``/qkdn-sdn-access:qkd_access``: the user database as RFC 7951 JSON, and the
changes an orchestrator's edit makes to it.

Pure: values in, values out. :func:`access_config` renders the database's content
(:class:`AccessData`), :func:`access_from_json` reads a datastore's ``qkd_access`` back (YANG
defaults applied), :func:`access_changes` lists what turns one into the other, in an order the
database accepts (profiles before the users that use them, applications removed before their
users). The user database stays the source of truth; :mod:`sdn_controller.nbi_server` applies
the changes to it before the NETCONF datastore commits.

>>> from qkdn.sla import SlaProfile
>>> data = AccessData(slas={"std": (SlaProfile("std", 1000), DEFAULT_RESTORATION)})
>>> access_config(data)["qkdn-sdn-access:qkd_access"]["sla_profiles"]["sla_profile"][0]["name"]
'std'
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qkdn.namespaces import QKDN_ACC_MODULE
from qkdn.sla import FallbackPolicy, SlaProfile
from sdn_controller.path_restoration import DEFAULT_RESTORATION, PathRestoration, RestorationType
from sdn_controller.user_db import ANY_PEER, Application, User

ACCESS = f"{QKDN_ACC_MODULE}:qkd_access"


@dataclass(frozen=True)
class AccessData:
    """Everything ``qkd_access`` holds: SLA profiles (with their restoration policy), users,
    applications (keyed by name / SAE id)."""

    slas: Mapping[str, tuple[SlaProfile, PathRestoration]] = field(default_factory=dict)
    users: Mapping[str, User] = field(default_factory=dict)
    applications: Mapping[str, Application] = field(default_factory=dict)


class ChangeKind(str, enum.Enum):
    PUT_SLA = "put-sla"
    DELETE_SLA = "delete-sla"
    PUT_USER = "put-user"
    REVOKE_USER = "revoke-user"
    REINSTATE_USER = "reinstate-user"
    DELETE_USER = "delete-user"
    PUT_APPLICATION = "put-application"
    REVOKE_APPLICATION = "revoke-application"
    REINSTATE_APPLICATION = "reinstate-application"
    DELETE_APPLICATION = "delete-application"


@dataclass(frozen=True)
class AccessChange:
    """One change to the user database; ``value`` is the new entry (None for deletions)."""

    kind: ChangeKind
    name: str
    value: Any = None


def access_data(slas: Iterable[SlaProfile], restorations: Mapping[str, PathRestoration],
                users: Iterable[User], applications: Iterable[Application]) -> AccessData:
    """:class:`AccessData` from the user database's lists."""
    return AccessData(
        {s.name: (s, restorations.get(s.name, DEFAULT_RESTORATION)) for s in slas},
        {u.name: u for u in users}, {a.sae_id: a for a in applications})


def access_config(data: AccessData) -> dict[str, Any]:
    """RFC 7951 JSON of ``qkd_access`` (config only; every value explicit)."""
    profiles = []
    for sla, policy in sorted(data.slas.values(), key=lambda p: p[0].name):
        profiles.append({
            "name": sla.name, "max_bandwidth": sla.max_bps, "min_bandwidth": sla.min_bps,
            "max_priority": sla.max_priority, "max_sessions": sla.max_sessions,
            "idle_timeout": sla.idle_timeout_s, "allow_lower_rate": sla.allow_lower_rate,
            "fallback": sla.fallback.value,
            "path_restoration": {
                "restoration_type": f"{QKDN_ACC_MODULE}:{policy.kind.value}",
                "hold_off_time": policy.hold_off_ms}})
    users = []
    for user in sorted(data.users.values(), key=lambda u: u.name):
        entry: dict[str, Any] = {"name": user.name, "sla_profile": user.sla,
                                 "revoked": user.revoked}
        if tuple(user.allowed_peers) != (ANY_PEER,):
            entry["allowed_peer"] = list(user.allowed_peers)
        if user.revoked_reason:
            entry["revoked_reason"] = user.revoked_reason
        users.append(entry)
    apps = []
    for app in sorted(data.applications.values(), key=lambda a: a.sae_id):
        entry = {"sae_id": app.sae_id, "user": app.user, "revoked": app.revoked}
        if app.node_id:
            entry["qkdn_id"] = app.node_id
        apps.append(entry)
    return {ACCESS: {"sla_profiles": {"sla_profile": profiles}, "users": {"user": users},
                     "applications": {"application": apps}}}


def access_state(data: AccessData, open_sessions_by_sae: Mapping[str, int]) -> dict[str, Any]:
    """RFC 7951 JSON of the ``config false`` part: ``active_sessions`` per user and
    application (open = accepted or active; a session counts once per end)."""
    by_user: dict[str, int] = {}
    for app in data.applications.values():
        by_user[app.user] = by_user.get(app.user, 0) + open_sessions_by_sae.get(app.sae_id, 0)
    return {ACCESS: {
        "users": {"user": [{"name": u, "active_sessions": by_user.get(u, 0)}
                           for u in sorted(data.users)]},
        "applications": {"application": [
            {"sae_id": s, "active_sessions": open_sessions_by_sae.get(s, 0)}
            for s in sorted(data.applications)]}}}


def access_from_json(document: Mapping[str, Any], node_names: Mapping[str, str]) -> AccessData:
    """:class:`AccessData` of a datastore's RFC 7951 JSON (libyang-validated, so every
    reference resolves); YANG defaults fill absent leaves. ``node_names`` maps ``qkdn_id`` to
    the node's name (the database keeps both)."""
    root = document.get(ACCESS) or {}
    slas: dict[str, tuple[SlaProfile, PathRestoration]] = {}
    for entry in (root.get("sla_profiles") or {}).get("sla_profile") or []:
        restoration = entry.get("path_restoration") or {}
        kind = str(restoration.get("restoration_type", "AUTOMATIC")).rpartition(":")[2]
        slas[entry["name"]] = (
            SlaProfile(entry["name"], int(entry["max_bandwidth"]),
                       int(entry.get("min_bandwidth", 0)), int(entry.get("max_priority", 0)),
                       int(entry.get("max_sessions", 16)), int(entry.get("idle_timeout", 60)),
                       bool(entry.get("allow_lower_rate", True)),
                       FallbackPolicy(entry.get("fallback", FallbackPolicy.QKD_ONLY.value))),
            PathRestoration(RestorationType(kind), int(restoration.get("hold_off_time", 0))))
    users: dict[str, User] = {}
    for entry in (root.get("users") or {}).get("user") or []:
        revoked = bool(entry.get("revoked", False))
        users[entry["name"]] = User(
            entry["name"], entry["sla_profile"],
            tuple(sorted(entry.get("allowed_peer") or [ANY_PEER])), revoked,
            entry.get("revoked_reason") if revoked else None)
    apps: dict[str, Application] = {}
    for entry in (root.get("applications") or {}).get("application") or []:
        node_id = entry.get("qkdn_id")
        apps[entry["sae_id"]] = Application(
            entry["sae_id"], entry["user"], node_names.get(node_id, node_id or ""), node_id,
            bool(entry.get("revoked", False)))
    return AccessData(slas, users, apps)


def _user_key(user: User) -> tuple[Any, ...]:
    return (user.sla, tuple(sorted(user.allowed_peers)))


def access_changes(old: AccessData, new: AccessData) -> list[AccessChange]:
    """What makes the database hold ``new`` instead of ``old``, in an order that keeps its
    references valid at every step (within one transaction anyway)."""
    changes: list[AccessChange] = []
    for name, value in sorted(new.slas.items()):
        if old.slas.get(name) != value:
            changes.append(AccessChange(ChangeKind.PUT_SLA, name, value))
    for name, user in sorted(new.users.items()):
        before = old.users.get(name)
        if before is None or _user_key(before) != _user_key(user):
            changes.append(AccessChange(ChangeKind.PUT_USER, name, user))
        was_revoked = before is not None and before.revoked
        if user.revoked and (not was_revoked or before is None
                             or (user.revoked_reason or None) != (before.revoked_reason or None)):
            changes.append(AccessChange(ChangeKind.REVOKE_USER, name, user))
        elif was_revoked and not user.revoked:
            changes.append(AccessChange(ChangeKind.REINSTATE_USER, name, user))
    for sae_id in sorted(set(old.applications) - set(new.applications)):
        changes.append(AccessChange(ChangeKind.DELETE_APPLICATION, sae_id))
    for sae_id, app in sorted(new.applications.items()):
        before_app = old.applications.get(sae_id)
        if before_app is None or (before_app.user, before_app.node_id) != (app.user,
                                                                          app.node_id):
            changes.append(AccessChange(ChangeKind.PUT_APPLICATION, sae_id, app))
        was = before_app is not None and before_app.revoked
        if app.revoked and not was:
            changes.append(AccessChange(ChangeKind.REVOKE_APPLICATION, sae_id, app))
        elif was and not app.revoked:
            changes.append(AccessChange(ChangeKind.REINSTATE_APPLICATION, sae_id, app))
    for name in sorted(set(old.users) - set(new.users)):
        changes.append(AccessChange(ChangeKind.DELETE_USER, name))
    for name in sorted(set(old.slas) - set(new.slas)):
        changes.append(AccessChange(ChangeKind.DELETE_SLA, name))
    return changes


def newly_revoked(changes: Iterable[AccessChange]) -> tuple[frozenset[str], frozenset[str]]:
    """(users, SAE ids) the changes revoke: their open sessions are to be closed."""
    users = frozenset(c.name for c in changes if c.kind is ChangeKind.REVOKE_USER)
    apps = frozenset(c.name for c in changes if c.kind is ChangeKind.REVOKE_APPLICATION)
    return users, apps


def apply_access_changes(db: Any, changes: Iterable[AccessChange], *, at: str = "") -> None:
    """Apply ``changes`` to a :class:`~sdn_controller.user_db.UserDb` in one transaction
    (all or nothing); its errors (``DatabaseError``) propagate."""
    with db.db.transaction():
        for change in changes:
            kind, name, value = change.kind, change.name, change.value
            if kind is ChangeKind.PUT_SLA:
                sla, policy = value
                db.add_sla(sla, replace=True)
                db.set_restoration(name, policy)
            elif kind is ChangeKind.PUT_USER:
                db.add_user(name, value.sla, value.allowed_peers, replace=True)
            elif kind is ChangeKind.REVOKE_USER:
                db.revoke_user(name, value.revoked_reason or "revoked by orchestrator", at=at)
            elif kind is ChangeKind.REINSTATE_USER:
                db.reinstate_user(name)
            elif kind is ChangeKind.PUT_APPLICATION:
                db.add_application(name, value.user, value.node_name, value.node_id,
                                   replace=True)
            elif kind is ChangeKind.REVOKE_APPLICATION:
                db.revoke_application(name)
            elif kind is ChangeKind.REINSTATE_APPLICATION:
                db.reinstate_application(name)
            elif kind is ChangeKind.DELETE_APPLICATION:
                db.delete_application(name)
            elif kind is ChangeKind.DELETE_USER:
                db.delete_user(name)
            elif kind is ChangeKind.DELETE_SLA:
                db.delete_sla(name)
