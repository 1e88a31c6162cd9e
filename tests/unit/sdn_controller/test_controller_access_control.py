import doctest

import pytest

from sdn_controller import access_control
from sdn_controller.access_control import AccessReason, check_access, etsi004_status, http_status
from sdn_controller.user_db import SlaProfile, UserDb


@pytest.fixture
def db():
    d = UserDb.open()
    d.add_sla(SlaProfile("std", max_bps=10_000))
    d.add_user("alice", "std")
    d.add_user("bob", "std", ("alice",))
    d.add_user("carol", "std")
    d.add_application("sae-a", "alice", "n1", "id-1")
    d.add_application("sae-b", "bob", "n2", "id-2")
    d.add_application("sae-c", "carol", "n3", "id-3")
    yield d
    d.close()


def test_granted_by_node_name_or_qkdn_id(db):
    for node in ("n1", "id-1"):
        d = check_access(db, "sae-a", "sae-b", node)
        assert d.allowed and d.reason is AccessReason.GRANTED
        assert (d.user, d.peer_user, d.sla) == ("alice", "bob", "std")


@pytest.mark.parametrize("sae,peer,node,reason", [
    ("sae-x", "sae-b", "n1", AccessReason.UNKNOWN_APPLICATION),
    ("sae-a", "sae-b", "n2", AccessReason.WRONG_NODE),
    ("sae-a", "sae-x", "n1", AccessReason.UNKNOWN_PEER),
    ("sae-a", "sae-a", "n1", AccessReason.SAME_APPLICATION),
    ("sae-b", "sae-c", "n2", AccessReason.PEER_NOT_ALLOWED),
])
def test_refusals(db, sae, peer, node, reason):
    d = check_access(db, sae, peer, node)
    assert not d.allowed and d.reason is reason


def test_revocations(db):
    db.revoke_user("alice", "stolen laptop")
    d = check_access(db, "sae-a", "sae-b", "n1")
    assert d.reason is AccessReason.USER_REVOKED and d.detail == "stolen laptop"
    assert check_access(db, "sae-b", "sae-a", "n2").reason is AccessReason.PEER_REVOKED
    db.reinstate_user("alice")
    db.revoke_application("sae-c")
    assert check_access(db, "sae-c", "sae-a", "n3").reason is AccessReason.APPLICATION_REVOKED
    assert check_access(db, "sae-a", "sae-c", "n1").reason is AccessReason.PEER_REVOKED


def test_edge_mappings():
    assert etsi004_status(AccessReason.GRANTED) == 0 and http_status(AccessReason.GRANTED) == 200
    for reason in AccessReason:
        if reason is not AccessReason.GRANTED:
            assert etsi004_status(reason) == 4 and http_status(reason) == 401


def test_docstring_examples_run():
    assert doctest.testmod(access_control).failed == 0
