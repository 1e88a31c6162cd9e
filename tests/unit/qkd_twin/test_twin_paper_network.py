"""The paper's six links (4 in rate mode, 2 in protocol mode), both ends of each as running
module threads in one process: every end delivers key, ends agree."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from qkd_twin.faults import LinkFaultState
from qkd_twin.module import (
    LinkEmulator,
    LinkRole,
    ModuleConfig,
    ModuleMode,
    QkdModule,
)
from qkd_twin.physics import preset

# (a, b, length km, mode) - topologies/paper.yaml
PAPER_LINKS = [("0", "1", 15, "rate"), ("0", "2", 25, "rate"), ("0", "3", 30, "protocol"),
               ("0", "4", 20, "rate"), ("0", "5", 35, "rate"), ("4", "5", 10, "protocol")]


class FirstKeys:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[tuple[str, LinkRole], dict[int, bytes]] = {}
        self.first_at: dict[tuple[str, LinkRole], float] = {}

    def sink(self, role: LinkRole):
        outer = self

        class Sink:
            def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None:
                with outer.lock:
                    outer.keys.setdefault((qkdl_id, role), {})[block_index] = key
                    outer.first_at.setdefault((qkdl_id, role), time.monotonic())
        return Sink()


def test_twin_paper_network_every_link_delivers_equal_first_keys():
    """Every link of the paper network delivers key at both ends (how fast is the benchmark's
    ``twin.first_key_s``, not a test's)."""
    record = FirstKeys()
    modules = []
    started = time.monotonic()
    for a, b, length, mode in PAPER_LINKS:
        for role in LinkRole:
            cfg = ModuleConfig(f"link-{a}-{b}", role, preset("reference", length),
                               f"seed-{a}-{b}".encode(), ModuleMode(mode))
            module = QkdModule(cfg, record.sink(role))
            module.start()
            modules.append(module)
    try:
        deadline = started + 30.0
        while time.monotonic() < deadline and len(record.first_at) < 2 * len(PAPER_LINKS):
            time.sleep(0.01)
        with record.lock:
            assert len(record.first_at) == 2 * len(PAPER_LINKS)
    finally:
        for module in modules:
            module.stop()
    for a, b, _, _ in PAPER_LINKS:
        alice = record.keys[(f"link-{a}-{b}", LinkRole.TRANSMITTER)]
        bob = record.keys[(f"link-{a}-{b}", LinkRole.RECEIVER)]
        common = set(alice) & set(bob)
        assert common and all(alice[n] == bob[n] for n in common)


@settings(max_examples=12, deadline=None)
@given(e_d=st.floats(0.0, 0.09), length=st.floats(1, 60), block=st.integers(0, 10**10),
       mode=st.sampled_from(list(ModuleMode)))
def test_twin_module_ends_identical_for_any_misalignment(e_d, length, block, mode):
    params = preset("reference", length, e_d=e_d)
    ends = [LinkEmulator(ModuleConfig("l", role, params, b"k", mode)) for role in LinkRole]
    a, b = (end.run_block(block, LinkFaultState()) for end in ends)
    assert a.key == b.key and a.status == b.status
