"""The event ring: sequence numbers, cursor paging, truncation, type filter, active alarms."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from orchestrator.event_log import EventLog, active_alarms, alarm_key


def clock() -> datetime:
    return datetime(2026, 11, 27, 3, 0, 0, 250000, tzinfo=UTC)


def test_events_are_numbered_and_paged_with_a_cursor() -> None:
    log = EventLog(capacity=10, clock=clock)
    for i in range(5):
        log.append("alarm" if i % 2 else "phys_link_perf_update", {"i": i})
    first = log.page(after=0, limit=2)
    assert [e.seq for e in first.events] == [1, 2] and first.next_cursor == 2
    assert first.events[0].event_time == "2026-11-27T03:00:00.250Z"
    rest = log.page(after=first.next_cursor, limit=10)
    assert [e.seq for e in rest.events] == [3, 4, 5] and rest.next_cursor == 5
    assert log.page(after=5).events == () and log.page(after=5).next_cursor == 5
    alarms = log.page(after=0, types=["alarm"])
    assert [e.data["i"] for e in alarms.events] == [1, 3]
    assert alarms.next_cursor == 5  # the cursor moves past what the filter skipped


def test_a_full_ring_drops_the_oldest_and_says_so() -> None:
    log = EventLog(capacity=3, clock=clock)
    for i in range(7):
        log.append("event", {"i": i})
    page = log.page(after=1)
    assert [e.seq for e in page.events] == [5, 6, 7]
    assert page.truncated and page.oldest_seq == 5
    assert not log.page(after=4).truncated
    assert log.counts == {"event": 7}
    with pytest.raises(ValueError):
        EventLog(capacity=0)


def test_wait_after_wakes_up_on_a_new_event() -> None:
    log = EventLog()
    assert log.wait_after(0, timeout=0.01) is False
    timer = threading.Timer(0.05, lambda: log.append("alarm", {}))
    timer.start()
    assert log.wait_after(0, timeout=5) is True
    timer.join()


def _alarm(log: EventLog, link: str, alarm_type: str, cleared: bool) -> None:
    log.append("alarm", {"alarm_type": alarm_type, "cleared": cleared,
                         "phys_link": {"qkdl_id": link}})


def test_active_alarms_are_raised_and_not_cleared_since() -> None:
    log = EventLog(clock=clock)
    _alarm(log, "L1", "QBER-HIGH", False)
    _alarm(log, "L2", "LINK-DOWN", False)
    _alarm(log, "L1", "LINK-DOWN", False)
    _alarm(log, "L1", "QBER-HIGH", True)
    log.append("phys_link_perf_update", {"qkdl_id": "L1"})
    active = active_alarms(log.snapshot())
    assert [(e.data["phys_link"]["qkdl_id"], e.data["alarm_type"]) for e in active] == [
        ("L2", "LINK-DOWN"), ("L1", "LINK-DOWN")]
    assert alarm_key({"alarm_type": "NODE-UNREACHABLE", "sdqkd_node": {"qkdn_id": "N"}}) == (
        "NODE-UNREACHABLE", "sdqkd_node", "N")
