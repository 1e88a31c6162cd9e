"""Rate blocks from a re-seeded PCG64 and an AES-CTR keystream: deterministic per link and
block at both ends, binomial QBER, distinct keys per block and link, one fault-file look per
batch."""

from __future__ import annotations

import numpy as np

from qkd_twin.faults import LinkFaultState
from qkd_twin.module import LinkEmulator, LinkRole, ModuleConfig, ModuleMode, QkdModule
from qkd_twin.physics import preset

SEED = bytes(range(32))


def _emulator(role: LinkRole, link: str = "l-ab", seed: bytes = SEED) -> LinkEmulator:
    return LinkEmulator(ModuleConfig(link, role, preset("reference", 80), seed, ModuleMode.RATE))


def test_twin_rate_blocks_equal_at_both_ends_and_across_instances():
    tx, rx = _emulator(LinkRole.TRANSMITTER), _emulator(LinkRole.RECEIVER)
    again = _emulator(LinkRole.TRANSMITTER)
    faults = LinkFaultState()
    for n in (0, 1, 7, 1000, 123456):
        a, b, c = tx.run_block(n, faults), rx.run_block(n, faults), again.run_block(n, faults)
        assert a.key == b.key == c.key and len(a.key) > 1000
        assert a.qber == b.qber == c.qber


def test_twin_rate_keys_differ_per_block_link_and_seed():
    faults = LinkFaultState()
    base = _emulator(LinkRole.TRANSMITTER)
    keys = {base.run_block(n, faults).key for n in range(50)}
    assert len(keys) == 50
    other_link = _emulator(LinkRole.TRANSMITTER, link="l-ac").run_block(3, faults).key
    other_seed = _emulator(LinkRole.TRANSMITTER, seed=bytes(32)).run_block(3, faults).key
    assert len({base.run_block(3, faults).key, other_link, other_seed}) == 3


def test_twin_rate_qber_is_binomial_over_the_sifted_bits():
    emulator = _emulator(LinkRole.TRANSMITTER)
    faults = LinkFaultState()
    perf = emulator.performance(faults)
    sifted = int(perf.sifted_bps * emulator.config.block_seconds)
    errors = np.array([emulator.run_block(n, faults).qber for n in range(2000)]) * sifted
    mean, sd = sifted * perf.qber, np.sqrt(sifted * perf.qber * (1 - perf.qber))
    assert abs(errors.mean() - mean) < 4 * sd / np.sqrt(len(errors))
    assert 0.85 * sd < errors.std() < 1.15 * sd


def test_twin_batch_reads_the_fault_file_once(tmp_path, monkeypatch):
    config = ModuleConfig("l-ab", LinkRole.TRANSMITTER, preset("reference", 80), SEED,
                          ModuleMode.RATE, fault_path=tmp_path / "faults.jsonl")
    delivered: list[tuple[int, bytes]] = []

    class Sink:
        def deliver(self, qkdl_id: str, block: int, key: bytes) -> None:
            delivered.append((block, key))

    module = QkdModule(config, Sink(), clock=lambda: 10.0)   # blocks 0..39 have ended
    looks = []
    original = module._watcher.records
    monkeypatch.setattr(module._watcher, "records", lambda: looks.append(1) or original())
    assert module._run_batch(0) == 40
    assert len(looks) == 1 and [b for b, _ in delivered] == list(range(40))
