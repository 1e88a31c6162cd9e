import json

from qkd_twin.pairing import EndRecord, PairedSink, end_record_path, peer_gap


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
    a = _end(tmp_path, "a", "b", 10.0, a_store, changes=changes)   # starts at block 11
    a.deliver("L", 11, b"k11")
    assert a_store.blocks == {} and changes == []                  # b not there yet
    b = _end(tmp_path, "b", "a", 14.5, b_store)                    # starts at block 15
    a.deliver("L", 14, b"k14")
    a.deliver("L", 15, b"k15")
    b.deliver("L", 15, b"k15")
    assert a_store.blocks == b_store.blocks == {15: b"k15"}
    assert changes == [True]


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
    _end(tmp_path, "b", "a", 9.2, Store(), resumed_after=3)   # b back: first block 10
    a.deliver("L", 10, b"x")
    assert a_store.discarded == [(0, 0), (4, 9)]   # block 0: before b first started
    assert sorted(a_store.blocks) == [1, 2, 3, 10]


def test_records_round_trip(tmp_path):
    _end(tmp_path, "a", "b", 41.0, Store(), resumed_after=7)
    record = EndRecord.from_json(json.loads(end_record_path(tmp_path, "L", "a").read_text()))
    assert record.start_block == 42 and record.resumed_after == 7
    assert peer_gap(record) == (8, 41)
