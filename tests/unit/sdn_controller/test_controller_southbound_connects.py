"""South-bound at scale: handshakes bounded, periodic gets within a budget (no sockets: the
connect step is replaced by a recorder)."""

import threading
import time

from sdn_controller.southbound import (
    AgentEndpoint,
    Southbound,
    SouthboundConfig,
    poll_interval_for,
)


class Handshakes:
    """Stands in for ncclient's connect: counts how many run at once, then refuses."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def __call__(self):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        raise ConnectionRefusedError("agent not there")


def test_at_most_max_parallel_connects_handshakes_run_at_once():
    endpoints = [AgentEndpoint(f"id-{i}", "127.0.0.1", 1, "admin", "pw", f"n{i}")
                 for i in range(12)]
    southbound = Southbound(endpoints, SouthboundConfig(max_parallel_connects=3,
                                                        backoff_initial_s=0.01,
                                                        backoff_max_s=0.02))
    handshakes = Handshakes()
    for session in southbound.values():
        session._connect = handshakes
    southbound.start(lambda *a: None, lambda *a: None)
    try:
        time.sleep(0.5)
    finally:
        southbound.stop()
    assert handshakes.calls >= 12          # every agent was tried
    assert handshakes.most == 3


def test_poll_interval_grows_with_agents_within_the_budget():
    assert poll_interval_for(20, 5.0, 10.0) == 5.0
    assert poll_interval_for(100, 5.0, 10.0) == 10.0
    assert poll_interval_for(100, 5.0, 0.0) == 5.0
    endpoints = [AgentEndpoint(f"id-{i}", "127.0.0.1", 1, "admin", "pw") for i in range(200)]
    southbound = Southbound(endpoints, SouthboundConfig(poll_interval_s=5.0))
    assert next(iter(southbound.values())).config.poll_interval_s == 20.0


def test_poll_delay_grows_with_the_reply_within_the_byte_budget():
    from sdn_controller.southbound import poll_delay_for

    budget = 256 * 1024
    assert poll_delay_for(10_000, 25, 5.0, budget) == 5.0          # small replies: interval
    assert poll_delay_for(budget, 100, 10.0, budget) == 100.0       # 100 agents × 1 s each
    assert poll_delay_for(2 * budget, 100, 10.0, budget) == 200.0   # twice the bytes: twice
    assert poll_delay_for(10 * budget, 100, 10.0, 0) == 10.0        # no byte budget
    endpoints = [AgentEndpoint(f"id-{i}", "127.0.0.1", 1, "admin", "pw") for i in range(30)]
    southbound = Southbound(endpoints, SouthboundConfig())
    assert next(iter(southbound.values())).config.agents == 30


def test_aes_gcm_is_offered_first_and_nothing_is_dropped():
    import paramiko

    from sdn_controller.southbound import AEAD_CIPHERS, prefer_aead_ciphers

    before = paramiko.Transport._preferred_ciphers
    try:
        prefer_aead_ciphers()
        prefer_aead_ciphers()   # idempotent
        after = paramiko.Transport._preferred_ciphers
        assert after[:len(AEAD_CIPHERS)] == AEAD_CIPHERS
        assert sorted(after) == sorted(set(before) | set(AEAD_CIPHERS))
        rest = [c for c in before if c not in AEAD_CIPHERS]
        assert list(after[len(AEAD_CIPHERS):]) == rest
    finally:
        paramiko.Transport._preferred_ciphers = before
