"""Item 11: stateful property-based tests (hypothesis ``RuleBasedStateMachine``) of three state
machines, each against an independent model:

* ``LinkStoreMachine`` — the two ends of one link's key store (``kms/key_store.py``): blocks
  delivered (also twice), bytes taken by a sender and by the receiver from the reference,
  messages lost in transit, replays, the settle rule, stores closed and reopened from their
  files (durability). Model: which byte of which half is still unused at each end.
* ``RelayMachine`` — one relay hop (``kms/relay.py``): ``ext_keys`` built with the one-time pad
  and the one-time MAC keys, opened by the receiver, acks checked; tampered, replayed and
  forged messages are rejected and cost exactly the link bytes they name; per message exactly
  |K| + 64 bytes of the sender's half.
* ``AdmissionMachine`` — the controller's admission control (``sdn_controller/
  admission_control.py``): open requests from both peers, key requests, closes, clock advance
  and expiry, forgetting terminated sessions. Invariants: states only move forward, link
  reservations equal what active sessions' routes hold and never exceed a link's key rate,
  per-user open-session counts never exceed the SLA.

``make test`` runs 50 examples per machine; ``make reliability`` 1,000 (the issue's figure).
Figures: bench/reliability.json, item state_machines.
"""

from __future__ import annotations

import base64
import itertools
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from kms.errors import AuthenticationFailed, InsufficientKey
from kms.key_pool import KeyRecord
from kms.key_store import Half, KeyRef, LinkKeyStore, sender_half, split_block
from kms.relay import MAC_KEY_BYTES, build_ack, build_ext_keys, check_ack, open_ext_keys
from sdn_controller.admission_control import AdmissionControl, ConfigRequest, SessionState
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.routing import GraphRouter
from sdn_controller.session_config import QoS
from sdn_controller.user_db import SlaProfile, UserDb

from . import reliability_report

ID_LOW = "11111111-0000-4000-8000-000000000000"
ID_HIGH = "22222222-0000-4000-8000-000000000000"
BLOCK = 48
SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else None   # fsync-free, fast

COUNTS: dict[str, int] = {}


def _block(index: int) -> bytes:
    return bytes((index * 31 + i * 7 + 3) % 256 for i in range(BLOCK))


class _TwoEnds:
    """Both ends of one link, in a scratch directory."""

    def __init__(self, settle: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qkdn-sm-", dir=SCRATCH))
        self.settle = settle
        self.ids = {"L": ID_LOW, "H": ID_HIGH}
        self.stores = {end: self._open(end) for end in ("L", "H")}

    def _open(self, end: str) -> LinkKeyStore:
        other = "H" if end == "L" else "L"
        return LinkKeyStore(self.dir / f"{end}.sqlite", "link", self.ids[end], self.ids[other],
                            capacity_bytes=1 << 20, settle_blocks=self.settle)

    def reopen(self, end: str) -> None:
        self.stores[end].close()
        self.stores[end] = self._open(end)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class LinkStoreMachine(RuleBasedStateMachine):
    refs = Bundle("refs")       # (receiving end, KeyRef) of messages that were received

    def __init__(self) -> None:
        super().__init__()
        COUNTS["link_store"] = COUNTS.get("link_store", 0) + 1
        self.ends: _TwoEnds | None = None
        # model: unused byte positions of each half, per end: {end: {half: {(block, i)}}}
        self.unused: dict[str, dict[Half, set[tuple[int, int]]]] = {}
        self.blocks: set[int] = set()
        self.data: dict[tuple[Half, int], bytes] = {}

    @initialize(settle=st.sampled_from([0, 0, 1, 2]))
    def start(self, settle: int) -> None:
        self.ends = _TwoEnds(settle)
        self.unused = {e: {Half.LOW: set(), Half.HIGH: set()} for e in ("L", "H")}

    def teardown(self) -> None:
        if self.ends is not None:
            self.ends.close()

    def _half_of(self, sender: str) -> Half:
        other = "H" if sender == "L" else "L"
        return sender_half(self.ends.ids[sender], self.ends.ids[other])

    @rule(index=st.integers(0, 12))
    def deliver(self, index: int) -> None:
        block = _block(index)
        fresh = [self.ends.stores[e].deliver(index, block) for e in ("L", "H")]
        assert fresh == [index not in self.blocks] * 2      # a block twice is ignored
        if index not in self.blocks:
            self.blocks.add(index)
            for half, part in split_block(block).items():
                self.data[(half, index)] = part
                for end in ("L", "H"):
                    self.unused[end][half].update((index, i) for i in range(len(part)))

    def _expected(self, sender: str, n: int) -> list[tuple[int, int]] | None:
        """The positions a sender must take for ``n`` bytes (oldest first), or None."""
        half = self._half_of(sender)
        if not self.blocks:
            return None
        settled = max(self.blocks) - self.ends.settle
        candidates = sorted(p for p in self.unused[sender][half] if p[0] <= settled)
        return candidates[:n] if len(candidates) >= n else None

    @rule(target=refs, sender=st.sampled_from(["L", "H"]), n=st.integers(1, 60),
          received=st.booleans())
    def send(self, sender: str, n: int, received: bool):
        receiver = "H" if sender == "L" else "L"
        half = self._half_of(sender)
        expected = self._expected(sender, n)
        if expected is None:
            with pytest.raises(InsufficientKey):
                self.ends.stores[sender].take_outgoing(n)
            return (receiver, None)
        ref, data = self.ends.stores[sender].take_outgoing(n)
        assert data == bytes(self.data[(half, b)][i] for b, i in expected)
        assert ref.length == n
        self.unused[sender][half] -= set(expected)
        if not received:           # lost in transit: wasted at the sender, unused at the peer
            return (receiver, None)
        assert self.ends.stores[receiver].take_incoming(ref) == data
        self.unused[receiver][half] -= set(expected)
        return (receiver, ref)

    @rule(message=refs)
    def replay(self, message) -> None:
        receiver, ref = message
        if ref is None:
            return
        with pytest.raises(AuthenticationFailed):
            self.ends.stores[receiver].take_incoming(ref)

    @rule(end=st.sampled_from(["L", "H"]), block=st.integers(0, 12), offset=st.integers(0, 30),
          length=st.integers(1, 30))
    def forged_reference(self, end: str, block: int, offset: int, length: int) -> None:
        """A reference naming any byte that is not unused at this end (consumed, beyond the
        block, never delivered) is refused whole and changes nothing. (One naming only unused
        bytes would be taken: the relay's MAC check is what refuses that forgery.)"""
        peer_half = self._half_of("H" if end == "L" else "L")
        wanted = {(block, i) for i in range(offset, offset + length)}
        if wanted <= self.unused[end][peer_half]:
            return
        store = self.ends.stores[end]
        before = store.levels()
        with pytest.raises(AuthenticationFailed):
            store.take_incoming(KeyRef.from_wire(f"{block}:{offset}:{length}"))
        assert store.levels() == before                      # all or nothing

    @rule(end=st.sampled_from(["L", "H"]))
    def crash_and_reopen(self, end: str) -> None:
        self.ends.reopen(end)

    @invariant()
    def levels_match_the_model(self) -> None:
        if self.ends is None:
            return
        for end in ("L", "H"):
            own = self._half_of(end)
            peer = Half.HIGH if own is Half.LOW else Half.LOW
            levels = self.ends.stores[end].levels()
            assert levels.outgoing_bytes == len(self.unused[end][own])
            assert levels.incoming_bytes == len(self.unused[end][peer])
            assert levels.blocks_delivered == len(self.blocks)

    @invariant()
    def no_byte_used_by_the_receiver_is_still_at_the_sender(self) -> None:
        if self.ends is None:
            return
        for sender in ("L", "H"):
            receiver = "H" if sender == "L" else "L"
            half = self._half_of(sender)
            assert self.unused[sender][half] <= self.unused[receiver][half]


class RelayMachine(RuleBasedStateMachine):
    messages = Bundle("messages")   # delivered (body, key_ids, ack_key_at_sender)

    def __init__(self) -> None:
        super().__init__()
        COUNTS["relay"] = COUNTS.get("relay", 0) + 1
        self.ends = _TwoEnds(0)
        for index in range(40):
            for store in self.ends.stores.values():
                store.deliver(index, _block(index) * 4)
        self.sender, self.receiver = self.ends.stores["L"], self.ends.stores["H"]
        self.delivered: set[str] = set()

    def teardown(self) -> None:
        self.ends.close()

    def _records(self, sizes: list[int]) -> list[KeyRecord]:
        return [KeyRecord(str(uuid.uuid4()), "sae-a", "sae-c", bytes(
            (i * 17 + len(sizes)) % 256 for i in range(size)), session="s") for size in sizes]

    @rule(target=messages, sizes=st.lists(st.sampled_from([8, 16, 32]), min_size=1, max_size=4))
    def relay(self, sizes: list[int]):
        records = self._records(sizes)
        before = self.sender.levels().outgoing_bytes
        available = self.sender.available_outgoing()
        need = sum(sizes) + 2 * MAC_KEY_BYTES
        if available < need:
            with pytest.raises(InsufficientKey):
                build_ext_keys("s", records, self.sender)
            return None
        body, ack_key = build_ext_keys("s", records, self.sender)
        assert before - self.sender.levels().outgoing_bytes == need   # |K| + 64 bytes, exactly
        assert all(r.key not in base64.b64decode(body["ciphertext"]) for r in records
                   if len(r.key) >= 16)
        got, receiver_ack_key = open_ext_keys(body, self.receiver)
        assert [(r.key_id, r.key) for r in got] == [(r.key_id, r.key) for r in records]
        ids = [r.key_id for r in records]
        ack = build_ack(ids, body["mac"], receiver_ack_key)
        check_ack(ack, ids, body["mac"], ack_key)
        self.delivered.update(ids)
        return (body, ids, ack_key)

    @rule(message=messages)
    def replay_is_refused(self, message) -> None:
        if message is None:
            return
        body, _, _ = message
        with pytest.raises(AuthenticationFailed):
            open_ext_keys(body, self.receiver)

    @rule(message=messages, field=st.sampled_from(["status", "key_IDs", "mac"]))
    def forged_ack_is_refused(self, message, field: str) -> None:
        if message is None:
            return
        body, ids, ack_key = message
        forged = build_ack(ids, body["mac"], bytes(2 * MAC_KEY_BYTES // 2))  # wrong key
        if field == "status":
            forged = {**build_ack(ids, body["mac"], ack_key), "status": "rejected"}
        elif field == "key_IDs":
            forged = {**build_ack(ids, body["mac"], ack_key), "key_IDs": ids[::-1] + ["x"]}
        with pytest.raises(AuthenticationFailed):
            check_ack(forged, ids, body["mac"], ack_key)

    @rule(sizes=st.lists(st.sampled_from([8, 16]), min_size=1, max_size=3),
          field=st.sampled_from(["ciphertext", "mac", "keys", "session"]),
          position=st.integers(0, 1000))
    def tampered_message_is_refused(self, sizes: list[int], field: str, position: int) -> None:
        if self.sender.available_outgoing() < sum(sizes) + 2 * MAC_KEY_BYTES:
            return
        records = self._records(sizes)
        body, _ = build_ext_keys("s", records, self.sender)
        if field in ("ciphertext", "mac"):
            raw = bytearray(base64.b64decode(body[field]))
            raw[position % len(raw)] ^= 1 << (position % 8)
            body = {**body, field: base64.b64encode(bytes(raw)).decode()}
        elif field == "keys" and "batch" in body:   # keys of one size: the compact form
            body = {**body, "batch": {**body["batch"], "slave_SAE_ID": "sae-thief"}}
        elif field == "keys":
            keys = [dict(k) for k in body["keys"]]
            keys[position % len(keys)]["slave_SAE_ID"] = "sae-thief"
            body = {**body, "keys": keys}
        else:
            body = {**body, "session": "other"}
        incoming = self.receiver.levels().incoming_bytes
        with pytest.raises(AuthenticationFailed):
            open_ext_keys(body, self.receiver)
        # the tampered message burnt exactly the link bytes it named, nothing else
        assert incoming - self.receiver.levels().incoming_bytes == sum(sizes) + 2 * MAC_KEY_BYTES

    @invariant()
    def consumption_is_mirrored(self) -> None:
        """Everything the sender used, the receiver used (every message was opened)."""
        assert self.sender.levels().outgoing_bytes == self.receiver.levels().incoming_bytes


# -- admission control --------------------------------------------------------------------------

NODES = 5
_ORDER = {SessionState.CONFIG_REQUESTED: 0, SessionState.ACCEPTED: 1, SessionState.ACTIVE: 2,
          SessionState.TERMINATED: 3}


class AdmissionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        COUNTS["admission"] = COUNTS.get("admission", 0) + 1
        self.links = [LinkMetrics(f"l{i}", f"n{a}", f"n{b}", LinkStatus.ACTIVE,
                                  skr=4000 * (1 + i))
                      for i, (a, b) in enumerate([(0, 1), (1, 2), (2, 3), (3, 4), (0, 4),
                                                  (1, 3)])]
        self.by_id = {lk.qkdl_id: lk for lk in self.links}
        self.db = UserDb.open()
        self.db.add_sla(SlaProfile("s", max_bps=20_000, min_bps=1_000, max_priority=5,
                                   max_sessions=2, idle_timeout_s=10))
        for n in range(NODES):
            self.db.add_user(f"u{n}", "s")
            self.db.add_application(f"sae-{n}", f"u{n}", f"n{n}")
        self.now = 0.0
        ids = (f"s{i}" for i in itertools.count())
        self.ac = AdmissionControl(self.db, GraphRouter(lambda: self.links),
                                   clock=lambda: self.now, new_session_id=lambda: next(ids))
        self.seen: dict[str, SessionState] = {}

    def teardown(self) -> None:
        self.db.close()

    def _request(self, a: int, b: int, rate: int, priority: int) -> None:
        qos = QoS(max_bps=rate, min_bps=1000, priority=priority)
        self.ac.request_config(ConfigRequest(f"n{a}", f"sae-{a}", f"sae-{b}", f"u{a}", "s", qos))

    @rule(a=st.integers(0, NODES - 1), b=st.integers(0, NODES - 1),
          rate=st.sampled_from([1_000, 5_000, 20_000, 50_000]), priority=st.integers(0, 9),
          both=st.booleans())
    def open(self, a: int, b: int, rate: int, priority: int, both: bool) -> None:
        if a == b:
            return
        self._request(a, b, rate, priority)
        if both:
            self._request(b, a, rate, priority)

    def _live(self):
        return [s for s in self.ac.sessions() if s.state is not SessionState.TERMINATED]

    @precondition(lambda self: self._live())
    @rule(pick=st.integers(0, 100))
    def key_request(self, pick: int) -> None:
        live = self._live()
        session = live[pick % len(live)]
        if session.state is SessionState.ACTIVE:
            self.ac.key_request(session.session_id)

    @precondition(lambda self: self._live())
    @rule(pick=st.integers(0, 100))
    def close(self, pick: int) -> None:
        live = self._live()
        self.ac.close(live[pick % len(live)].session_id)

    @rule(seconds=st.floats(0.1, 40))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.ac.expire()

    @rule()
    def forget(self) -> None:
        self.ac.forget_terminated()

    @invariant()
    def states_only_move_forward(self) -> None:
        for s in self.ac.sessions(include_terminated=True):
            old = self.seen.get(s.session_id)
            assert old is None or _ORDER[s.state] >= _ORDER[old], (s.session_id, old, s.state)
            self.seen[s.session_id] = s.state

    @invariant()
    def reservations_match_active_routes(self) -> None:
        reserved = self.ac.ledger.reserved_by_link()
        expected: dict[str, int] = {}
        for s in self.ac.sessions():
            if s.state is SessionState.ACTIVE and s.route is not None:
                for link_id, rate in s.route.link_rates().items():
                    expected[link_id] = expected.get(link_id, 0) + rate
        assert expected == {k: v for k, v in reserved.items() if v}
        for link_id, rate in reserved.items():
            assert rate <= self.by_id[link_id].key_rate_bps

    @invariant()
    def user_session_limit(self) -> None:
        per_user: dict[str, int] = {}
        for s in self.ac.sessions():
            if s.state in (SessionState.ACCEPTED, SessionState.ACTIVE):
                per_user[s.initiator.user] = per_user.get(s.initiator.user, 0) + 1
        assert all(n <= 2 for n in per_user.values()), per_user


MACHINES = {"link_store": LinkStoreMachine, "relay": RelayMachine, "admission": AdmissionMachine}


def _run(examples: int, run: str) -> None:
    figures = {}
    for name, machine in MACHINES.items():
        COUNTS[name] = 0
        started = time.monotonic()
        run_state_machine_as_test(machine, settings=settings(
            max_examples=examples, stateful_step_count=25, deadline=None, database=None,
            suppress_health_check=list(HealthCheck)))
        figures[name] = {"examples": COUNTS[name], "counterexamples": 0,
                         "seconds": round(time.monotonic() - started, 1)}
    reliability_report.record("state_machines", run, figures)
    for name, f in figures.items():
        assert f["examples"] >= examples, (name, f)


@pytest.mark.timeout(600)
def test_state_machines_short():
    _run(50, "short")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_state_machines_long():
    _run(1000, "long")

