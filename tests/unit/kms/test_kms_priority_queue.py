"""Priority then FIFO; the gate never lets a low-priority flood starve a high-priority request."""

import threading
import time

from kms.priority_queue import PriorityGate, RequestQueue


def test_priority_then_fifo():
    q = RequestQueue()
    for item, prio in [("l1", 0), ("h1", 5), ("l2", 0), ("h2", 5), ("m", 3)]:
        q.push(item, prio)
    assert [q.pop() for _ in range(len(q))] == ["h1", "h2", "m", "l1", "l2"]


def test_high_priority_overtakes_a_queued_low_priority_flood():
    gate = PriorityGate(slots=1)
    order, release = [], threading.Event()

    def worker(name, prio):
        with gate.slot(prio):
            order.append(name)
            if name == "first":
                release.wait(5)

    first = threading.Thread(target=worker, args=("first", 0))
    first.start()
    time.sleep(0.05)
    flood = [threading.Thread(target=worker, args=(f"low{i}", 0)) for i in range(20)]
    for t in flood:
        t.start()
    while gate.waiting < 20:
        time.sleep(0.01)
    high = threading.Thread(target=worker, args=("high", 9))
    high.start()
    while gate.waiting < 21:
        time.sleep(0.01)
    release.set()
    for t in [first, high, *flood]:
        t.join(5)
    assert order[0] == "first" and order[1] == "high"
    assert sorted(order[2:]) == sorted(f"low{i}" for i in range(20))


def test_round_robin_over_sessions_within_a_priority():
    q = RequestQueue()
    for i in range(5):
        q.push(f"g{i}", 0, flow="greedy")
    q.push("p0", 0, flow="polite")
    q.push("p1", 0, flow="polite")
    q.push("x", 0)                      # no session: a session of its own
    assert [q.pop() for _ in range(len(q))] == ["g0", "p0", "x", "g1", "p1", "g2", "g3", "g4"]


def test_a_session_arriving_late_waits_one_round_not_the_whole_backlog():
    q = RequestQueue()
    for i in range(30):
        q.push(f"g{i}", 0, flow="greedy")
    assert [q.pop() for _ in range(3)] == ["g0", "g1", "g2"]
    q.push("polite", 0, flow="polite")
    assert q.pop() == "polite"        # next, not after g3..g29
    q.push("high", 5, flow="greedy")  # priority still comes first
    assert q.pop() == "high"
    assert [q.pop() for _ in range(len(q))] == [f"g{i}" for i in range(3, 30)]


def test_fifo_within_a_session_and_bounded_bookkeeping():
    q = RequestQueue()
    for n in range(200):
        q.push(n, 0, flow=f"s{n % 50}")
        q.push(-n, 0, flow=f"s{n % 50}")
        assert q.pop() is not None
    seen = [q.pop() for _ in range(len(q))]
    assert len(seen) == 200
    assert q.sessions_known <= 50     # at most the sessions served in the current round
    for _ in range(2):                # two rounds of one other session: the rest forgotten
        q.push("n", 0, flow="next")
        q.push("n", 0, flow="next")
        q.pop()
        q.pop()
    assert q.sessions_known == 1
    q.push("a", 0, flow="t")
    q.remove("a")
    assert len(q) == 0


def test_gate_serves_a_polite_session_between_a_floods_requests():
    gate = PriorityGate(slots=1)
    order, release = [], threading.Event()

    def worker(name, session):
        with gate.slot(0, session):
            order.append(name)
            if name == "first":
                release.wait(5)

    first = threading.Thread(target=worker, args=("first", "greedy"))
    first.start()
    time.sleep(0.05)
    flood = [threading.Thread(target=worker, args=(f"g{i}", "greedy")) for i in range(10)]
    for t in flood:
        t.start()
    while gate.waiting < 10:
        time.sleep(0.01)
    polite = threading.Thread(target=worker, args=("polite", "polite"))
    polite.start()
    while gate.waiting < 11:
        time.sleep(0.01)
    release.set()
    for t in [first, polite, *flood]:
        t.join(5)
    assert order.index("polite") <= 2, order     # not behind the 10 queued before it


def test_gate_takes_the_session_from_the_request_context():
    from qkdn.structured_logging import bound_session
    gate = PriorityGate(slots=1)
    with bound_session("s1"), gate.slot(0):
        assert gate._queue.sessions_known == 1
