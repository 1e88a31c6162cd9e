"""The demo's progress lines: printed on a change of state, or as a heartbeat."""

from __future__ import annotations

import threading
import time

from qkdn.demo import Progress


def test_prints_changes_and_heartbeats_only():
    lines: list[str] = []
    state = {"n": 0, "calls": 0}
    done = threading.Event()

    def status():
        state["calls"] += 1
        if state["calls"] == 6:
            state["n"] = 1
        if state["calls"] >= 12:
            done.set()
        return state["n"], f"n={state['n']} call={state['calls']}"

    with Progress(lines.append, status, interval=0.01, heartbeat=60):
        assert done.wait(5)
    assert [line.split()[0] for line in lines] == ["n=0", "n=1"]

    lines.clear()
    with Progress(lines.append, lambda: (0, "same"), interval=0.01, heartbeat=0.05):
        time.sleep(0.3)
    assert 2 <= len(lines) <= 8   # the first state, then heartbeats


def test_a_status_that_fails_is_skipped():
    lines: list[str] = []
    calls = []

    def status():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("file being rewritten")
        return 1, "ok"

    with Progress(lines.append, status, interval=0.01, heartbeat=60):
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
    assert lines == ["ok"]
