"""Steady-state cadence of an emulated QKD module: batches while key is not wanted produce
exactly the blocks, key and events of the fine cadence, in one sink call per batch."""

from __future__ import annotations

import threading
import time

from qkd_twin.faults import FaultKind, append_fault, fault_file
from qkd_twin.module import (
    LinkEventKind,
    LinkRole,
    ModuleConfig,
    ModuleMode,
    QkdModule,
    batch_wake_time,
    reserve_is_low,
)
from qkd_twin.physics import preset

SEED = bytes(range(32))


class BatchSink:
    """Records single deliveries and batches."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, bytes]] = []
        self.calls: list[int] = []    # blocks per call (1 for a single delivery)
        self.lock = threading.Lock()

    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
        with self.lock:
            self.blocks.append((block_index, key))
            self.calls.append(1)

    def deliver_many(self, qkdl_id: str, blocks: list[tuple[int, bytes]]) -> None:
        with self.lock:
            self.blocks.extend(blocks)
            self.calls.append(len(blocks))


def config(**kw) -> ModuleConfig:
    return ModuleConfig("l-ab", LinkRole.TRANSMITTER, preset("reference", 20), SEED,
                        kw.pop("mode", ModuleMode.RATE), **kw)


def test_a_batch_equals_the_blocks_one_by_one(tmp_path):
    faults = fault_file(tmp_path, "a", "b")
    # a cut from block 1005 on: the batch must report it exactly as the fine cadence does
    append_fault(tmp_path, "a", "b", FaultKind.LINK_DOWN, now=1005 * 0.25 - 0.3)
    fine_sink, batch_sink = BatchSink(), BatchSink()
    fine = QkdModule(config(fault_path=faults), fine_sink)
    now = [1010 * 0.25 + 0.01]
    batch = QkdModule(config(fault_path=faults), batch_sink, clock=lambda: now[0])
    fine_events, batch_events = [], []
    fine.add_listener(fine_events.append)
    batch.add_listener(batch_events.append)
    for n in range(1000, 1010):
        fine.process_block(n)
    assert batch._run_batch(1000) == 1010
    assert batch_sink.calls == [len(batch_sink.blocks)] and batch_sink.blocks == fine_sink.blocks
    assert [b for b, _ in batch_sink.blocks] == list(range(1000, 1005))
    assert [(e.kind, e.block_index) for e in batch_events] == \
        [(e.kind, e.block_index) for e in fine_events]
    assert LinkEventKind.LINK_DOWN in {e.kind for e in batch_events}
    assert batch.state == fine.state and batch.delivered_bits == fine.delivered_bits


def test_batching_needs_a_period_the_start_blocks_and_no_demand():
    wanted = [False]
    module = QkdModule(config(idle_batch_seconds=1.0, fine_start_blocks=8), BatchSink(),
                       demand=lambda: wanted[0])
    assert not module._batching(107, 100)           # still in the first 8 blocks
    assert module._batching(108, 100)
    wanted[0] = True
    assert not module._batching(108, 100)           # someone is short of key: fine cadence
    assert not QkdModule(config(), BatchSink())._batching(500, 0)   # batching off (default)

    def broken() -> bool:
        raise RuntimeError("store closed")
    assert not QkdModule(config(idle_batch_seconds=1.0), BatchSink(),
                         demand=broken)._batching(500, 0)


def test_wake_times_are_wall_clock_multiples_shared_by_both_ends():
    assert batch_wake_time(3, 0.25, 1.0) == 1.0
    assert batch_wake_time(4, 0.25, 1.0) == 2.0
    assert batch_wake_time(400, 0.25, 2.0) == 102.0


def test_reserve_rule():
    assert reserve_is_low((0, 10**6), 320_000, 4.0)
    assert not reserve_is_low((80_000, 80_000), 320_000, 4.0)   # 4 s = 80,000 B per half
    assert reserve_is_low((79_999, 80_000), 320_000, 4.0)


def test_running_module_batches_without_gaps():
    sink = BatchSink()
    module = QkdModule(config(block_seconds=0.02, idle_batch_seconds=0.1, fine_start_blocks=3),
                       sink)
    module.start()
    try:
        time.sleep(0.7)
    finally:
        module.stop()
    indices = [b for b, _ in sink.blocks]
    assert indices == list(range(indices[0], indices[0] + len(indices)))   # in order, no gap
    # from the block in progress at start (the start-up blocks come at the fine cadence:
    # one per call, or those a thread starved on a loaded machine ran late for, in one)
    assert indices[0] == module._first
    assert max(sink.calls) >= 4 and module.batches >= 2
    assert len(sink.calls) < len(indices) / 2     # far fewer wake-ups than blocks
