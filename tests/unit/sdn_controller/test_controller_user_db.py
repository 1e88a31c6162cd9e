import doctest
from pathlib import Path

import pytest

from qkdn.topology import load_topology
from sdn_controller import sql_database
from sdn_controller.errors import (
    DatabaseError,
    DuplicateEntryError,
    InvalidEntryError,
    UnknownEntryError,
)
from sdn_controller.sql_database import to_paramstyle
from sdn_controller.user_db import FallbackPolicy, SlaProfile, UserDb

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def db():
    d = UserDb.open()
    yield d
    d.close()


def test_sla_round_trip_and_validation(db):
    sla = SlaProfile("gold", max_bps=5000, min_bps=100, max_priority=7, max_sessions=3,
                     idle_timeout_s=30, allow_lower_rate=False, fallback="hybrid")
    db.add_sla(sla)
    assert db.sla("gold") == sla and sla.fallback is FallbackPolicy.HYBRID
    assert db.slas() == [sla]
    with pytest.raises(DuplicateEntryError):
        db.add_sla(sla)
    db.add_sla(SlaProfile("gold", max_bps=6000), replace=True)
    assert db.sla("gold").max_bps == 6000 and db.sla("gold").allow_lower_rate is True
    for bad in ({"max_bps": 0}, {"max_bps": 10, "min_bps": 11}, {"max_bps": 10, "max_sessions": 0},
                {"max_bps": 10, "fallback": "pigeon"}):
        with pytest.raises((InvalidEntryError, ValueError)):
            SlaProfile("x", **bad)
    assert db.sla("nope") is None


def test_users_peers_and_revocation(db):
    db.add_sla(SlaProfile("std", max_bps=1000))
    with pytest.raises(UnknownEntryError):
        db.add_user("alice", "missing-sla")
    alice = db.add_user("alice", "std", ("bob", "carol"))
    assert alice.allowed_peers == ("bob", "carol") and alice.may_reach("bob")
    assert not alice.may_reach("mallory")
    assert db.add_user("bob", "std").may_reach("anyone")
    with pytest.raises(DuplicateEntryError):
        db.add_user("bob", "std")
    db.revoke_user("alice", "left the company", at="2026-11-27T03:00:00Z")
    assert db.user("alice").revoked and db.user("alice").revoked_reason == "left the company"
    db.reinstate_user("alice")
    assert not db.user("alice").revoked
    with pytest.raises(UnknownEntryError):
        db.revoke_user("nobody")
    assert [u.name for u in db.users()] == ["alice", "bob"]


def test_applications(db):
    db.add_sla(SlaProfile("std", max_bps=1000))
    db.add_user("alice", "std")
    with pytest.raises(UnknownEntryError):
        db.add_application("sae-1", "nobody", "n1")
    app = db.add_application("sae-1", "alice", "n1", "11111111-1111-1111-1111-111111111111")
    assert app.is_on("n1") and app.is_on("11111111-1111-1111-1111-111111111111")
    assert not app.is_on("n2")
    db.revoke_application("sae-1")
    assert db.application("sae-1").revoked
    assert [a.sae_id for a in db.applications("alice")] == ["sae-1"]
    assert db.applications("bob") == []


def test_load_paper_topology_is_idempotent(tmp_path):
    topo = load_topology(REPO / "topologies" / "paper.yaml")
    path = tmp_path / "controller" / "users.sqlite"
    db = UserDb.open(path)
    db.load_topology(topo)
    db.load_topology(topo)
    assert {s.name for s in db.slas()} == {"standard", "premium", "standard-hybrid"}
    assert len(db.users()) == 6 and len(db.applications()) == 6
    app = db.application("sae-2")
    assert app.node_name == "2" and app.node_id == topo.node("2").qkdn_id
    db.close()
    again = UserDb.open(path)  # persisted
    assert again.user("user-0").sla == "premium"
    assert again.sla("standard-hybrid").fallback.value == "hybrid"  # users 4 and 5 (ADR 0009)
    again.close()


def test_transaction_is_all_or_nothing(db):
    db.add_sla(SlaProfile("std", max_bps=1000))
    with pytest.raises(UnknownEntryError), db.db.transaction():
        db.add_user("alice", "std")
        db.add_application("sae-1", "ghost", "n1")
    assert db.user("alice") is None


def test_foreign_keys_are_enforced(db):
    with pytest.raises(DatabaseError):
        db.db.execute("INSERT INTO users (name, sla_name) VALUES ('x', 'no-such-sla')")


def test_paramstyle_is_isolated():
    assert to_paramstyle("a = :a AND b = :b_2", "named") == "a = :a AND b = :b_2"
    assert to_paramstyle("a = :a AND b LIKE '5%'", "pyformat") == "a = %(a)s AND b LIKE '5%%'"
    with pytest.raises(ValueError):
        to_paramstyle("x", "qmark")
    assert doctest.testmod(sql_database).failed == 0


def test_deletes_are_refused_while_referenced_and_restoration_is_kept(db):
    from sdn_controller.path_restoration import PathRestoration, RestorationType

    db.add_sla(SlaProfile("gold", 5000))
    assert db.restoration("gold") == PathRestoration()  # AUTOMATIC, 0 ms
    db.set_restoration("gold", PathRestoration(RestorationType.MANUAL, 300))
    assert db.restoration("gold").kind is RestorationType.MANUAL
    db.add_user("u", "gold")
    db.add_application("gw", "u", "a")
    with pytest.raises(InvalidEntryError):
        db.delete_sla("gold")
    with pytest.raises(InvalidEntryError):
        db.delete_user("u")
    db.revoke_application("gw")
    assert db.application("gw").revoked
    db.reinstate_application("gw")
    assert not db.application("gw").revoked
    db.delete_application("gw")
    db.delete_user("u")
    db.delete_sla("gold")
    assert db.sla("gold") is None and db.restoration("gold") == PathRestoration()
    with pytest.raises(UnknownEntryError):
        db.delete_application("gw")
