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
