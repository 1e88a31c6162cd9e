"""Paired sink: a batch of blocks is filtered like single blocks and forwarded in one call."""

from qkd_twin.pairing import PairedSink


class BatchStore:
    def __init__(self):
        self.calls = []

    def deliver(self, qkdl_id, block_index, key):
        self.calls.append([(block_index, key)])

    def deliver_many(self, qkdl_id, blocks):
        self.calls.append(list(blocks))

    def discard(self, first, last):
        return 0


def _end(tmp_path, node, peer, now, store, *, alive=lambda pid: True, changes=None):
    return PairedSink(tmp_path, "L", node, peer, store, block_seconds=1.0, resumed_after=-1,
                      discard=store.discard,
                      on_peer_change=(changes.append if changes is not None else None),
                      clock=lambda: now, alive=alive)


def test_batch_starts_at_both_ends_first_block_in_one_call(tmp_path):
    store, changes = BatchStore(), []
    a = _end(tmp_path, "a", "b", 10.0, store, changes=changes)
    a.deliver_many("L", [(11, b"k11"), (12, b"k12")])
    assert store.calls == [] and changes == []                      # b not running yet
    # b runs from 13.55 s: the link's first block is 13, of which both ran 45 %
    _end(tmp_path, "b", "a", 13.5, BatchStore())
    a.deliver_many("L", [(13, b"k13"), (14, b"k14"), (15, b"k15")])
    # held blocks 11-12 precede the link's first block; block 13 keeps the shared prefix
    assert store.calls == [[(13, b"k"), (14, b"k14"), (15, b"k15")]]
    assert changes == [True]
    a.deliver_many("L", [])
    assert len(store.calls) == 1


def test_batch_dropped_while_the_peer_is_down(tmp_path):
    alive = {"up": True}
    store, changes = BatchStore(), []
    a = _end(tmp_path, "a", "b", 0.0, store, alive=lambda pid: alive["up"], changes=changes)
    _end(tmp_path, "b", "a", 0.0, BatchStore())
    a.deliver_many("L", [(1, b"x"), (2, b"y")])
    alive["up"] = False
    a.deliver_many("L", [(3, b"z")])
    assert store.calls == [[(1, b"x"), (2, b"y")]]
    assert changes == [True, False]
