import json

import pytest

from qkd_twin.pairing import (
    START_LEAD_S,
    EndRecord,
    PairedSink,
    end_record_path,
    first_block_share,
    peer_gap,
)


class Store:
    def __init__(self):
        self.blocks = {}
        self.discarded = []

    def deliver(self, qkdl_id, block_index, key):
        self.blocks[block_index] = key

    def discard(self, first, last):
        self.discarded.append((first, last))
        for index in range(first, last + 1):
            self.blocks.pop(index, None)
        return 0


def _end(tmp_path, node, peer, now, store, *, resumed_after=-1, alive=lambda pid: True,
         changes=None):
    return PairedSink(tmp_path, "L", node, peer, store, block_seconds=1.0,
                      resumed_after=resumed_after, discard=store.discard,
                      on_peer_change=(changes.append if changes is not None else None),
                      clock=lambda: now, alive=alive)


def test_no_key_until_the_peer_runs_then_from_the_later_start(tmp_path):
    a_store, b_store = Store(), Store()
    changes = []
    a = _end(tmp_path, "a", "b", 10.0, a_store, changes=changes)   # key from 10 + lead
    a.deliver("L", 11, b"k11")
    assert a_store.blocks == {} and changes == []                  # b not there yet
    b = _end(tmp_path, "b", "a", 14.5 - START_LEAD_S, b_store)      # key from 14.5
    a.deliver("L", 13, b"k13")
    for end in (a, b):
        end.deliver("L", 14, b"0123456789" * 10)   # the short first block: half of it
        end.deliver("L", 15, b"k15")
    assert a_store.blocks == b_store.blocks == {14: b"0123456789" * 5,
                                                15: b"k15"}
    assert changes == [True]


def test_first_block_share_is_the_time_both_ends_ran():
    own = EndRecord("a", 4, -1, 1, 4.3)
    peer = EndRecord("b", 4, -1, 2, 4.2)
    assert first_block_share(own, peer, 1.0) == (4, pytest.approx(0.7))
    assert first_block_share(peer, own, 1.0) == first_block_share(own, peer, 1.0)
    later = EndRecord("b", 6, -1, 2, 6.9)
    assert first_block_share(own, later, 1.0) == (6, pytest.approx(0.1))
    legacy = EndRecord("b", 5, -1, 2)                # an older record: from block 5's start
    assert first_block_share(own, legacy, 1.0) == (5, 1.0)


def test_a_first_block_too_short_for_a_byte_gives_no_key(tmp_path):
    a_store, b_store = Store(), Store()
    a = _end(tmp_path, "a", "b", 2.0, a_store)
    b = _end(tmp_path, "b", "a", 2.99 - START_LEAD_S, b_store)  # from 2.99: 1 % of block 2
    for end in (a, b):
        end.deliver("L", 2, b"x" * 50)               # 0.5 byte: nothing
        end.deliver("L", 3, b"y" * 50)
    assert a_store.blocks == b_store.blocks == {3: b"y" * 50}


def test_start_lead_keeps_the_first_block_ahead_of_the_record(tmp_path):
    assert 0 < START_LEAD_S < 0.05
    end = _end(tmp_path, "a", "b", 7.999, Store())
    assert end.record.start_time == pytest.approx(7.999 + START_LEAD_S)
    assert end.record.start_block == 8                 # 8.009 lies in block 8


def test_peer_restart_discards_the_blocks_it_never_received(tmp_path):
    alive = {"pid": True}
    a_store, b_store = Store(), Store()
    a = _end(tmp_path, "a", "b", 0.0, a_store, alive=lambda pid: alive["pid"])
    _end(tmp_path, "b", "a", 0.0, b_store)
    for block in range(1, 6):
        a.deliver("L", block, b"x")
    alive["pid"] = False                                 # b dies after keeping block 3 only
    a.deliver("L", 6, b"x")
    assert 6 not in a_store.blocks                       # no partner, no key
    alive["pid"] = True
    _end(tmp_path, "b", "a", 9.25 - START_LEAD_S, Store(), resumed_after=3)  # key from 9.25
    a.deliver("L", 9, b"xxxx")
    a.deliver("L", 10, b"x")
    assert a_store.discarded == [(4, 8)]           # blocks b never received
    assert sorted(a_store.blocks) == [1, 2, 3, 9, 10]
    assert a_store.blocks[9] == b"xxx"             # 0.75 of block 9


def test_records_round_trip(tmp_path):
    _end(tmp_path, "a", "b", 41.0, Store(), resumed_after=7)
    record = EndRecord.from_json(json.loads(end_record_path(tmp_path, "L", "a").read_text()))
    assert record.start_block == 41 and record.resumed_after == 7
    assert record.start_time == 41.0 + START_LEAD_S
    assert peer_gap(record) == (8, 40)
    legacy = {"node": "a", "start_block": 42, "resumed_after": 7, "pid": 1}
    assert EndRecord.from_json(legacy).start_time is None


def test_a_peer_record_read_late_still_gives_both_ends_the_same_blocks(tmp_path):
    a_store, b_store = Store(), Store()
    a = _end(tmp_path, "a", "b", 10.0, a_store)
    a.deliver("L", 10, b"0123456789")          # b's record is not visible yet: block held
    b = _end(tmp_path, "b", "a", 10.5 - START_LEAD_S, b_store)  # from 10.5: half of block 10
    b.deliver("L", 10, b"0123456789")
    for end in (a, b):
        end.deliver("L", 11, b"k11")
    assert a_store.blocks == b_store.blocks == {10: b"01234", 11: b"k11"}


def test_only_the_newest_blocks_are_held(tmp_path):
    from qkd_twin.pairing import HOLD_S

    a_store = Store()
    a = _end(tmp_path, "a", "b", 0.0, a_store)      # block_seconds 1.0
    for block in range(1, 11):
        a.deliver("L", block, b"x")                 # no peer yet
    _end(tmp_path, "b", "a", 0.5, Store())          # its record says: key from 0.5 + lead
    a.deliver("L", 11, b"x")
    assert sorted(a_store.blocks) == list(range(11 - int(HOLD_S), 12))
