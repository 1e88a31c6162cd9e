"""Errors of the SDN controller. Every one derives from :class:`qkdn.errors.QkdnError`; the
edges (the KM's ETSI 004/014 replies, the orchestrator's HTTP API, the CLI) translate them."""

from __future__ import annotations

from qkdn.errors import QkdnError


class ControllerError(QkdnError):
    """Root of the controller's errors."""


# --- routing ---------------------------------------------------------------------------------
class RoutingError(ControllerError):
    """No route could be given for a request."""


class UnknownNodeError(RoutingError):
    """A node named in a routing request is not in the graph."""

    def __init__(self, node: str) -> None:
        super().__init__(f"node {node!r} is not in the routing graph")
        self.node = node


class NoPathError(RoutingError):
    """No usable path joins ``src`` and ``dst`` (every route crosses a hidden link)."""

    def __init__(self, src: str, dst: str, detail: str = "") -> None:
        msg = f"no usable path from {src} to {dst}"
        super().__init__(f"{msg}: {detail}" if detail else msg)
        self.src, self.dst = src, dst


class InsufficientCapacityError(RoutingError):
    """Paths exist, but together they cannot carry the requested key rate.

    ``available_bps`` is the most that could be routed (the max-flow value)."""

    def __init__(self, src: str, dst: str, requested_bps: int, available_bps: int) -> None:
        super().__init__(f"{src} to {dst}: requested {requested_bps} bit/s, the network can "
                         f"carry at most {available_bps} bit/s")
        self.src, self.dst = src, dst
        self.requested_bps, self.available_bps = requested_bps, available_bps


# --- databases -------------------------------------------------------------------------------
class DatabaseError(ControllerError):
    """A controller database could not be read or written."""


class UnknownEntryError(DatabaseError):
    """A user, application, SLA profile or link that the caller named does not exist."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"unknown {kind} {name!r}")
        self.kind, self.name = kind, name


class DuplicateEntryError(DatabaseError):
    """An entry with that name already exists."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists")
        self.kind, self.name = kind, name


class InvalidEntryError(DatabaseError):
    """A value given for a user, SLA profile, application or node is out of range."""


class TopologyDataError(ControllerError):
    """An agent's qkd_node data or notification could not be understood."""


# --- admission -------------------------------------------------------------------------------
class SessionError(ControllerError):
    """A session operation was asked in a state that does not allow it."""


class UnknownSessionError(SessionError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"unknown session {session_id}")
        self.session_id = session_id


class SessionStateError(SessionError):
    def __init__(self, session_id: str, state: str, operation: str) -> None:
        super().__init__(f"session {session_id} is {state}: cannot {operation}")
        self.session_id, self.state, self.operation = session_id, state, operation


# --- southbound push -------------------------------------------------------------------------
class PushError(ControllerError):
    """Configuring a node failed (carries the node and the reason)."""

    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"node {node_id}: {reason}")
        self.node_id, self.reason = node_id, reason
