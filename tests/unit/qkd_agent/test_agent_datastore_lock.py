"""RFC 6241 §7.5 lock table."""

from __future__ import annotations

import pytest

from qkd_agent.datastore_lock import DatastoreName, LockTable
from qkd_agent.rpc_error import ErrorTag, RpcError

RUNNING = DatastoreName.RUNNING


def test_lock_unlock_and_holder():
    locks = LockTable()
    locks.lock(RUNNING, 1)
    assert locks.holder(RUNNING) == 1
    locks.check_writable(RUNNING, 1)
    locks.unlock(RUNNING, 1)
    assert locks.holder(RUNNING) is None


def test_lock_denied_names_holder():
    locks = LockTable()
    locks.lock(RUNNING, 1)
    with pytest.raises(RpcError) as err:
        locks.lock(RUNNING, 2)
    assert err.value.tag is ErrorTag.LOCK_DENIED and err.value.info == {"session-id": "1"}
    with pytest.raises(RpcError) as err:
        locks.lock(RUNNING, 1)  # even the holder cannot lock twice
    assert err.value.tag is ErrorTag.LOCK_DENIED


def test_other_sessions_may_not_write_or_unlock():
    locks = LockTable()
    locks.lock(RUNNING, 1)
    with pytest.raises(RpcError) as err:
        locks.check_writable(RUNNING, 2)
    assert err.value.tag is ErrorTag.IN_USE and err.value.info == {"session-id": "1"}
    with pytest.raises(RpcError) as err:
        locks.unlock(RUNNING, 2)
    assert err.value.tag is ErrorTag.OPERATION_FAILED
    with pytest.raises(RpcError):
        LockTable().unlock(RUNNING, 1)


def test_release_all_of_a_session():
    locks = LockTable()
    locks.lock(RUNNING, 3)
    locks.lock(DatastoreName.CANDIDATE, 4)
    locks.release_all(3)
    assert locks.holder(RUNNING) is None and locks.holder(DatastoreName.CANDIDATE) == 4
