"""Emulated QKD modules: identical keys at both ends, modes, faults, events, threads."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from qkd_twin.faults import FaultKind, LinkFaultState, append_fault, fault_file
from qkd_twin.module import (
    LinkEmulator,
    LinkEventKind,
    LinkRole,
    LinkStatus,
    ModuleConfig,
    ModuleMode,
    QkdModule,
    read_seed,
)
from qkd_twin.physics import preset
from qkd_twin.postprocessing.pipeline import BlockStatus

SEED = bytes(range(32))


def pair(mode: ModuleMode, **kw) -> tuple[LinkEmulator, LinkEmulator]:
    params = kw.pop("params", preset("reference", 20))
    return tuple(LinkEmulator(ModuleConfig("l-ab", role, params, SEED, mode, **kw))
                 for role in (LinkRole.TRANSMITTER, LinkRole.RECEIVER))


class Store:
    """A KeySink that records deliveries."""

    def __init__(self) -> None:
        self.keys: dict[int, bytes] = {}
        self.event = threading.Event()

    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
        assert qkdl_id == "l-ab"
        self.keys[block_index] = key
        self.event.set()


@pytest.mark.parametrize("mode", list(ModuleMode))
def test_twin_both_ends_compute_identical_keys(mode):
    alice, bob = pair(mode)
    for n in range(100, 106):
        a, b = alice.run_block(n, LinkFaultState()), bob.run_block(n, LinkFaultState())
        assert a.status is BlockStatus.OK and a.key and a.key == b.key
    other = LinkEmulator(ModuleConfig("l-ab", LinkRole.RECEIVER, preset("reference", 20),
                                      b"another seed", mode))
    assert other.run_block(100, LinkFaultState()).key != alice.run_block(100,
                                                                         LinkFaultState()).key


def test_twin_rate_mode_emits_the_model_rate():
    alice, _ = pair(ModuleMode.RATE)
    perf = alice.performance(LinkFaultState())
    total = sum(len(alice.run_block(n, LinkFaultState()).key) for n in range(40))
    assert total * 8 == pytest.approx(perf.skr_bps * 40 * 0.25, rel=1e-4)


def test_twin_protocol_mode_key_fraction_close_to_model():
    alice, _ = pair(ModuleMode.PROTOCOL)
    perf = alice.performance(LinkFaultState())
    outs = [alice.run_block(n, LinkFaultState()) for n in range(8)]
    sifted = np.mean([o.detail.sifted_bits for o in outs])
    keyed = np.mean([8 * len(o.key) for o in outs])
    model_fraction = perf.skr_bps / perf.sifted_bps
    assert 0.6 * model_fraction < keyed / sifted <= model_fraction
    assert all(abs(o.qber - perf.qber) < 0.006 for o in outs)


def test_twin_slow_links_pool_blocks_into_frames():
    alice, bob = pair(ModuleMode.PROTOCOL, params=preset("gys", 40))
    frame = alice.frame_blocks(alice.performance(LinkFaultState()))
    assert frame > 1
    outs = [alice.run_block(n, LinkFaultState()) for n in range(2 * frame)]
    keyed = [o.block_index for o in outs if o.key]
    assert keyed == [frame - 1, 2 * frame - 1]
    assert bob.run_block(frame - 1, LinkFaultState()).key == outs[frame - 1].key


def test_twin_eavesdropper_raises_measured_qber_by_a_quarter():
    alice, _ = pair(ModuleMode.PROTOCOL)
    clean = np.mean([alice.run_block(n, LinkFaultState()).qber for n in range(6)])
    for p in (0.2, 0.3):
        tapped = np.mean([alice.run_block(n, LinkFaultState(eavesdrop_fraction=p)).qber
                          for n in range(6)])
        assert tapped - clean == pytest.approx(p / 4, abs=0.008)


def test_twin_block_aborted_above_threshold_yields_no_key():
    alice, _ = pair(ModuleMode.PROTOCOL)
    out = alice.run_block(7, LinkFaultState(eavesdrop_fraction=0.7))
    assert out.status is BlockStatus.ABORTED_QBER and out.key == b""
    rate, _ = pair(ModuleMode.RATE)
    out = rate.run_block(7, LinkFaultState(eavesdrop_fraction=0.7))
    assert out.status is BlockStatus.ABORTED_QBER and out.key == b""


def test_twin_module_events_for_link_down_up_and_eavesdropper(tmp_path):
    path = fault_file(tmp_path, "A", "B")
    config = ModuleConfig("l-ab", LinkRole.TRANSMITTER, preset("reference", 20), SEED,
                          ModuleMode.RATE, fault_path=path)
    store = Store()
    module = QkdModule(config, store)
    events = []
    module.add_listener(events.append)
    now = 1_764_000_000.0
    first = int(now / 0.25)
    module.process_block(first)
    assert [e.kind for e in events] == [LinkEventKind.PERF_UPDATE]
    assert module.state.status is LinkStatus.ACTIVE and module.state.skr > 4e6
    down = append_fault(tmp_path, "A", "B", FaultKind.LINK_DOWN, now=now)
    for n in range(first + 1, down.effective_block + 2):
        module.process_block(n)
    assert down.effective_block not in store.keys and first in store.keys
    kinds = [e.kind for e in events]
    assert LinkEventKind.LINK_DOWN in kinds
    assert module.state.status is LinkStatus.PASSIVE and module.state.skr == 0
    events.clear()
    up = append_fault(tmp_path, "A", "B", FaultKind.LINK_UP, now=now + 1)
    eve = append_fault(tmp_path, "A", "B", FaultKind.EAVESDROP, 0.3, now=now + 2)
    for n in range(down.effective_block + 2, eve.effective_block + 1):
        module.process_block(n)
    kinds = [e.kind for e in events]
    assert LinkEventKind.LINK_UP in kinds and LinkEventKind.QBER_ALARM in kinds
    assert module.state.qber > 0.07 and up.effective_block in store.keys


def test_twin_module_thread_delivers_first_key():
    store = Store()
    config = ModuleConfig("l-ab", LinkRole.RECEIVER, preset("reference", 20), SEED,
                          ModuleMode.PROTOCOL)
    with QkdModule(config, store) as module:
        assert store.event.wait(30)
        assert module.state.status is LinkStatus.ACTIVE
    n, key = next(iter(store.keys.items()))
    twin = LinkEmulator(ModuleConfig("l-ab", LinkRole.TRANSMITTER, preset("reference", 20),
                                     SEED, ModuleMode.PROTOCOL))
    assert twin.run_block(n, LinkFaultState()).key == key


def test_twin_read_seed_hex_or_raw(tmp_path):
    (tmp_path / "hex.seed").write_text(SEED.hex() + "\n")
    (tmp_path / "raw.seed").write_bytes(b"\xff\x00raw")
    assert read_seed(tmp_path / "hex.seed") == SEED
    assert read_seed(tmp_path / "raw.seed") == b"\xff\x00raw"


def test_twin_module_config_for_link_reads_the_state_dir(tmp_path):
    from qkd_twin.faults import fault_file
    from qkd_twin.module import module_config_for_link, seed_path
    path = seed_path(tmp_path, "A", "l-ab")
    path.parent.mkdir(parents=True)
    path.write_text(SEED.hex())
    cfg = module_config_for_link(tmp_path, "A", "B", "l-ab", LinkRole.TRANSMITTER,
                                 preset("reference", 20), "protocol", block_seconds=0.5)
    assert cfg.seed == SEED and cfg.mode is ModuleMode.PROTOCOL and cfg.block_seconds == 0.5
    assert cfg.fault_path == fault_file(tmp_path, "B", "A")


def test_twin_too_short_frames_report_no_qber_and_raise_no_alarm():
    params = preset("gys", 135)            # near the cut-off: tiny sifted rate
    config = ModuleConfig("l-ab", LinkRole.TRANSMITTER, params, SEED, ModuleMode.PROTOCOL,
                          max_frame_blocks=2)
    module = QkdModule(config, Store())
    events = []
    module.add_listener(events.append)
    for n in range(6):
        out = module.process_block(n)
        assert out.key == b""
    assert all(e.kind is not LinkEventKind.QBER_ALARM for e in events)
    assert module.state.qber == 0.0


def test_twin_link_beyond_cutoff_is_passive(tmp_path):
    path = fault_file(tmp_path, "A", "B")
    config = ModuleConfig("l-ab", LinkRole.TRANSMITTER, preset("reference", 20), SEED,
                          ModuleMode.RATE, fault_path=path)
    module = QkdModule(config, Store())
    events = []
    module.add_listener(events.append)
    now = 1_764_000_000.0
    first = int(now / 0.25)
    module.process_block(first)
    # 4 dB of fiber + 36 dB = 200 km of reference fiber: QBER 8 %, below the abort
    # threshold, but no secret key left
    loss = append_fault(tmp_path, "A", "B", FaultKind.EXTRA_LOSS, 36.0, now=now)
    out = module.process_block(loss.effective_block)
    assert out.key == b"" and out.status is BlockStatus.NO_KEY
    assert module.state.status is LinkStatus.PASSIVE
    assert module.state.skr == 0 and "loss" in module.state.reason
    assert [e.kind for e in events] == [LinkEventKind.PERF_UPDATE, LinkEventKind.PERF_UPDATE,
                                        LinkEventKind.QBER_ALARM]
    deeper = append_fault(tmp_path, "A", "B", FaultKind.EXTRA_LOSS, 45.0, now=now + 1)
    out = module.process_block(deeper.effective_block)
    assert out.status is BlockStatus.ABORTED_QBER and module.state.reason == "aborted-qber"
    aborted = [e for e in events if e.kind is LinkEventKind.BLOCK_ABORTED]
    assert len(aborted) == 1 and aborted[0].block_index == deeper.effective_block
    assert module.blocks_aborted == 1


def test_twin_perf_updates_are_rate_limited_under_attack():
    config = ModuleConfig("l-ab", LinkRole.TRANSMITTER, preset("reference", 10), SEED,
                          ModuleMode.PROTOCOL)
    module = QkdModule(config, Store())
    events = []
    module.add_listener(events.append)

    class Tapped:
        def state_at(self, block, block_seconds):
            return LinkFaultState(eavesdrop_fraction=0.3 if block >= 4 else 0.0)
    module._watcher = Tapped()
    for n in range(40):
        module.process_block(n)
    updates = [e.block_index for e in events if e.kind is LinkEventKind.PERF_UPDATE]
    assert updates[0] == 0 and len(updates) <= 1 + 36 // 4
    assert all(b - a >= 4 for a, b in itertools.pairwise(updates))
    assert any(e.kind is LinkEventKind.QBER_ALARM and e.block_index <= 5 for e in events)


def test_twin_secrets_stay_out_of_reprs():
    alice, _ = pair(ModuleMode.PROTOCOL)
    out = alice.run_block(3, LinkFaultState())
    assert SEED.hex() not in repr(alice.config) and repr(SEED) not in repr(alice.config)
    assert out.key and repr(out.key) not in repr(out)
    assert "alice_key" not in repr(out.detail)


def test_twin_module_behind_real_time_catches_up_without_gaps():
    now = [1_764_000_000.0]
    store = Store()
    config = ModuleConfig("l-ab", LinkRole.TRANSMITTER, preset("reference", 20), SEED,
                          ModuleMode.RATE)
    module = QkdModule(config, store, clock=lambda: now[0])
    first = int(now[0] / 0.25)
    module.start()
    try:
        now[0] += 3.0          # the process was paused for 3 s
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(store.keys) < 12:
            time.sleep(0.01)
    finally:
        module.stop()
    assert sorted(store.keys)[:12] == list(range(first, first + 12))
