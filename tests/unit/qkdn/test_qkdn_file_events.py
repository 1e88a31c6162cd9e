"""FolderEvents: a replaced file wakes the waiter, an append does not, a folder created
later is watched once it exists, interrupt() wakes at once."""

from __future__ import annotations

import os
import threading
import time

import pytest

from qkdn.file_events import FolderEvents


@pytest.fixture
def events(tmp_path):
    watched = FolderEvents.open([tmp_path / "a", tmp_path / "later" / "faults"])
    if watched is None:
        pytest.skip("no inotify here")
    (tmp_path / "a").mkdir(exist_ok=True)
    yield watched
    watched.close()


def test_replaced_file_wakes_and_append_does_not(tmp_path):
    (tmp_path / "a").mkdir()
    events = FolderEvents.open([tmp_path / "a"])
    if events is None:
        pytest.skip("no inotify here")
    with events:
        log = tmp_path / "a" / "node.log"
        log.write_text("x")
        events.wait(0.05)                       # the creation's close
        with open(log, "a") as handle:
            handle.write("more")
            handle.flush()
            assert not events.wait(0.2)         # an append (IN_MODIFY) is not watched
        tmp = tmp_path / "a" / ".ports.json.tmp"
        tmp.write_text("{}")
        events.wait(0.05)
        os.replace(tmp, tmp_path / "a" / "ports.json")
        assert events.wait(2)
        assert not events.wait(0.1)             # drained


def test_a_folder_made_later_is_watched_once_it_exists(tmp_path, events):
    (tmp_path / "later").mkdir()
    assert events.wait(2)                       # its parent's creation event
    (tmp_path / "later" / "faults").mkdir()
    assert events.wait(2)
    events.wait(0.05)
    (tmp_path / "later" / "faults" / "a--b.json").write_text("{}")
    assert events.wait(2)


def test_interrupt_wakes_a_waiter(tmp_path, events):
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(events.wait(10)))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.05)
    events.interrupt()
    waiter.join(2)
    assert woke == [True] and time.monotonic() - started < 2
