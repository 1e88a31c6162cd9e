"""RFC 6241 §7.5 datastore locks: which session holds the lock on which datastore."""

from __future__ import annotations

from enum import StrEnum

from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError


class DatastoreName(StrEnum):
    RUNNING = "running"
    CANDIDATE = "candidate"
    STARTUP = "startup"


class LockTable:
    """Lock holders per datastore. Not thread-safe: used from the agent's event loop only."""

    def __init__(self) -> None:
        self._holders: dict[DatastoreName, int] = {}

    def holder(self, datastore: DatastoreName) -> int | None:
        return self._holders.get(datastore)

    def lock(self, datastore: DatastoreName, session_id: int) -> None:
        """Take the lock; ``lock-denied`` naming the holder if another session has it."""
        current = self._holders.get(datastore)
        if current is not None:
            raise RpcError(
                ErrorTag.LOCK_DENIED,
                f"lock on {datastore} is held by session {current}",
                type=ErrorType.PROTOCOL,
                info={"session-id": str(current)},
            )
        self._holders[datastore] = session_id

    def unlock(self, datastore: DatastoreName, session_id: int) -> None:
        """Release the lock this session holds; ``operation-failed`` otherwise."""
        current = self._holders.get(datastore)
        if current != session_id:
            why = "is not locked" if current is None else f"is locked by session {current}"
            raise RpcError(
                ErrorTag.OPERATION_FAILED,
                f"{datastore} {why}",
                type=ErrorType.PROTOCOL,
                info={"session-id": str(current)} if current is not None else {},
            )
        del self._holders[datastore]

    def check_writable(self, datastore: DatastoreName, session_id: int) -> None:
        """``in-use`` when another session holds the lock of the datastore to modify."""
        current = self._holders.get(datastore)
        if current is not None and current != session_id:
            raise RpcError(
                ErrorTag.IN_USE,
                f"{datastore} is locked by session {current}",
                type=ErrorType.PROTOCOL,
                info={"session-id": str(current)},
            )

    def release_all(self, session_id: int) -> None:
        """Drop every lock of a session that ended (closed, killed or lost)."""
        for name in [n for n, s in self._holders.items() if s == session_id]:
            del self._holders[name]
