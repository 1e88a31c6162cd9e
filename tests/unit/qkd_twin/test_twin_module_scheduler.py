"""One scheduler thread for a node's emulated QKD modules: the same blocks and key as a thread
per module, one wake-up per shared instant, catch-up in slices, clean removal."""

from __future__ import annotations

import threading
import time

import pytest

from qkd_twin.module import (
    MAX_BLOCKS_PER_STEP,
    LinkRole,
    ModuleConfig,
    ModuleMode,
    QkdModule,
)
from qkd_twin.module_scheduler import ModuleScheduler
from qkd_twin.physics import preset

SEED = bytes(range(32))


class Sink:
    def __init__(self) -> None:
        self.blocks: list[tuple[int, bytes]] = []
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
        self.deliver_many(qkdl_id, [(block_index, key)])

    def deliver_many(self, qkdl_id: str, blocks: list[tuple[int, bytes]]) -> None:
        with self.lock:
            self.blocks.extend(blocks)
            self.calls.append(len(blocks))


def config(link: str, **kw) -> ModuleConfig:
    return ModuleConfig(link, kw.pop("role", LinkRole.TRANSMITTER), preset("reference", 20),
                        SEED, ModuleMode.RATE, **kw)


def test_one_thread_drives_every_module_with_the_blocks_of_a_thread_each():
    links = [f"l-{i}" for i in range(4)]
    sinks = {link: Sink() for link in links}
    before = {t.name for t in threading.enumerate()}
    with ModuleScheduler(name="qkd-modules-test") as scheduler:
        modules = [QkdModule(config(link, block_seconds=0.02, idle_batch_seconds=0.1,
                                    fine_start_blocks=3), sinks[link], scheduler=scheduler)
                   for link in links]
        for module in modules:
            module.start()
        names = {t.name for t in threading.enumerate()} - before
        time.sleep(0.6)
        for module in modules:
            module.stop()
    assert names == {"qkd-modules-test"}           # no thread per module
    for link, module in zip(links, modules):
        blocks = sinks[link].blocks
        indices = [b for b, _ in blocks]
        assert len(indices) >= 10
        assert indices == list(range(indices[0], indices[0] + len(indices)))   # no gap
        reference = QkdModule(config(link, block_seconds=0.02), Sink())
        assert [reference.process_block(n).key for n in indices] == [k for _, k in blocks]
        assert max(sinks[link].calls) >= 4           # the steady state came in batches
    # the four ends share their batch instants: far fewer wake-ups than module steps
    assert scheduler.wakeups < scheduler.steps / 2


def test_both_ends_on_their_own_schedulers_deliver_the_same_key():
    sinks = (Sink(), Sink())
    with ModuleScheduler() as a_side, ModuleScheduler() as b_side:
        ends = [QkdModule(config("l-ab", role=role, block_seconds=0.02), sink, scheduler=s)
                for role, sink, s in zip(LinkRole, sinks, (a_side, b_side))]
        first = int(time.time() / 0.02) + 1
        for end in ends:
            end.start(first)
        time.sleep(0.3)
        for end in ends:
            end.stop()
    common = min(len(sinks[0].blocks), len(sinks[1].blocks))
    assert common >= 5 and sinks[0].blocks[:common] == sinks[1].blocks[:common]


def test_a_module_far_behind_catches_up_in_slices_without_starving_the_others():
    now = [1_764_000_000.0]
    slow_sink, other_sink = Sink(), Sink()
    with ModuleScheduler(clock=lambda: now[0]) as scheduler:
        slow = QkdModule(config("l-slow"), slow_sink, clock=lambda: now[0], scheduler=scheduler)
        other = QkdModule(config("l-other"), other_sink, clock=lambda: now[0],
                          scheduler=scheduler)
        slow.start()
        other.start()
        first = int(now[0] / 0.25)
        now[0] += 30.0          # the process was paused for 30 s: 120 blocks behind
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (len(slow_sink.blocks) < 120
                                               or len(other_sink.blocks) < 120):
            time.sleep(0.01)
        slow.stop()
        other.stop()
    assert [b for b, _ in slow_sink.blocks][:120] == list(range(first, first + 120))
    assert max(slow_sink.calls) <= MAX_BLOCKS_PER_STEP and len(slow_sink.calls) >= 3
    assert [b for b, _ in other_sink.blocks][:120] == list(range(first, first + 120))


def test_remove_waits_for_a_step_in_progress_and_a_failing_module_is_dropped():
    started, release = threading.Event(), threading.Event()
    steps: list[str] = []

    class Slow:
        def step(self, now: float) -> float | None:
            steps.append("slow")
            started.set()
            release.wait(2)
            return now + 0.01

    class Broken:
        def step(self, now: float) -> float | None:
            steps.append("broken")
            raise RuntimeError("bug")

    with ModuleScheduler() as scheduler:
        slow, broken = Slow(), Broken()
        scheduler.add(broken, time.time())
        scheduler.add(slow, time.time())
        assert started.wait(2)
        remover = threading.Thread(target=scheduler.remove, args=(slow,))
        remover.start()
        time.sleep(0.05)
        assert remover.is_alive()            # the step is still running
        release.set()
        remover.join(2)
        assert not remover.is_alive()
        time.sleep(0.05)
        assert scheduler.module_count() == 0           # both gone: one removed, one failed
    assert steps.count("broken") == 1 and steps.count("slow") == 1


def test_a_stopped_scheduler_takes_no_module():
    scheduler = ModuleScheduler()
    scheduler.stop()
    with pytest.raises(RuntimeError):
        scheduler.add(QkdModule(config("l-x"), Sink()), time.time())


def test_a_recorded_fault_brings_a_batching_module_back_to_the_fine_cadence():
    from qkd_twin.module import FAULT_FINE_BLOCKS
    module = QkdModule(config("l-f", idle_batch_seconds=1.0, fine_start_blocks=8), Sink(),
                       demand=lambda: False)
    assert module._batching(200, 100)
    module.fault_changed(now=200 * 0.25 + 0.01)
    assert not module._batching(200, 100)
    assert not module._batching(200 + FAULT_FINE_BLOCKS, 100)
    assert module._batching(201 + FAULT_FINE_BLOCKS, 100)


def test_wake_brings_a_queued_step_forward():
    stepped = threading.Event()

    class Late:
        def step(self, now: float) -> float | None:
            stepped.set()
            return None

    with ModuleScheduler() as scheduler:
        late = Late()
        scheduler.add(late, time.time() + 60)
        time.sleep(0.05)
        assert not stepped.is_set()
        scheduler.wake(late, time.time())
        assert stepped.wait(2)
