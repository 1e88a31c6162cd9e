"""Access control element: may this (KM-verified) application open a session to that peer?

The KM has verified the SAE's client certificate (mutual TLS) and reports the SAE id in
``sdqkdn_application_new``; this module checks that identity against the user database:
the application is known, bound to the node that reported it, neither it nor its user is
revoked, the peer application is known, and the user may reach the peer's user. The
:class:`Decision` carries a :class:`AccessReason`; the edges translate it with
:func:`etsi004_status` and :func:`http_status` (one table each, here).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sdn_controller.user_db import Directory


class AccessReason(str, enum.Enum):
    GRANTED = "granted"
    UNKNOWN_APPLICATION = "unknown-application"
    APPLICATION_REVOKED = "application-revoked"
    WRONG_NODE = "wrong-node"
    UNKNOWN_USER = "unknown-user"
    USER_REVOKED = "user-revoked"
    UNKNOWN_PEER = "unknown-peer"
    PEER_REVOKED = "peer-revoked"
    PEER_NOT_ALLOWED = "peer-not-allowed"
    SAME_APPLICATION = "same-application"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: AccessReason
    user: str | None = None
    peer_user: str | None = None
    sla: str | None = None
    detail: str = ""


def check_access(directory: Directory, sae_id: str, peer_sae_id: str, node: str) -> Decision:
    """Decide whether ``sae_id``, connected through ``node`` (name or qkdn_id), may open a
    session with ``peer_sae_id``.

    >>> from sdn_controller.user_db import UserDb, SlaProfile
    >>> db = UserDb.open()
    >>> db.add_sla(SlaProfile("std", max_bps=10_000))
    >>> _ = db.add_user("alice", "std"); _ = db.add_user("bob", "std", ("carol",))
    >>> _ = db.add_application("sae-a", "alice", "n1"); _ = db.add_application("sae-b", "bob", "n2")
    >>> check_access(db, "sae-a", "sae-b", "n1").allowed
    True
    >>> check_access(db, "sae-b", "sae-a", "n2").reason.value
    'peer-not-allowed'
    >>> check_access(db, "sae-x", "sae-b", "n1").reason.value
    'unknown-application'
    """
    app = directory.application(sae_id)
    if app is None:
        return Decision(False, AccessReason.UNKNOWN_APPLICATION, detail=f"SAE {sae_id!r}")
    if app.revoked:
        return Decision(False, AccessReason.APPLICATION_REVOKED, app.user)
    if not app.is_on(node):
        return Decision(False, AccessReason.WRONG_NODE, app.user,
                        detail=f"SAE {sae_id!r} is bound to node {app.node_name}")
    user = directory.user(app.user)
    if user is None:
        return Decision(False, AccessReason.UNKNOWN_USER, app.user)
    if user.revoked:
        return Decision(False, AccessReason.USER_REVOKED, user.name,
                        detail=user.revoked_reason or "")
    if peer_sae_id == sae_id:
        return Decision(False, AccessReason.SAME_APPLICATION, user.name)
    peer = directory.application(peer_sae_id)
    if peer is None:
        return Decision(False, AccessReason.UNKNOWN_PEER, user.name,
                        detail=f"SAE {peer_sae_id!r}")
    peer_user = directory.user(peer.user)
    if peer.revoked or peer_user is None or peer_user.revoked:
        return Decision(False, AccessReason.PEER_REVOKED, user.name, peer.user)
    if not user.may_reach(peer_user.name):
        return Decision(False, AccessReason.PEER_NOT_ALLOWED, user.name, peer_user.name)
    return Decision(True, AccessReason.GRANTED, user.name, peer_user.name, user.sla)


#: ETSI GS QKD 004 status for a refusal. 004 has no "unauthorised" status; an application
#: that may not reach its peer is told that no QKD connection is available to it (4).
_ETSI004_STATUS = {AccessReason.GRANTED: 0}
_ETSI004_REFUSED = 4


def etsi004_status(reason: AccessReason) -> int:
    """The 004 status code an OPEN_CONNECT gets for this decision (0 or 4)."""
    return _ETSI004_STATUS.get(reason, _ETSI004_REFUSED)


def http_status(reason: AccessReason) -> int:
    """The ETSI 014 HTTP status: 200 when granted, 401 (unauthorised) otherwise."""
    return 200 if reason is AccessReason.GRANTED else 401
