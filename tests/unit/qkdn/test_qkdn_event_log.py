"""The session event log: recording, validation (no key material can get in), rotation,
reading back and resolving pending session ids."""

from __future__ import annotations

import json

import pytest

from qkdn.event_log import (
    EVENTS_FILE,
    Event,
    EventError,
    EventKind,
    EventRecorder,
    check_detail,
    collect_events,
    parse_lines,
    read_events,
    resolve_sessions,
    rotated_path,
)


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 0.5
        return self.t


def test_recorded_events_are_json_lines_read_back_in_order(tmp_path):
    path = tmp_path / EVENTS_FILE
    recorder = EventRecorder("2", path, clock=FakeClock())
    recorder.record(EventKind.REQUEST, "pending:a", api="014", operation="enc_keys", sae="sae-2")
    recorder.record(EventKind.QKD_KEY_AVAILABLE, None, qkdl_id="l-1")
    recorder.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"t": 1000.5, "node": "2", "event": "request",
                                    "session": "pending:a", "detail": {
                                        "api": "014", "operation": "enc_keys", "sae": "sae-2"}}
    assert [e.event for e in read_events(path)] == [EventKind.REQUEST,
                                                    EventKind.QKD_KEY_AVAILABLE]
    assert path.stat().st_mode & 0o777 == 0o600
    assert recorder.counts == {EventKind.REQUEST: 1, EventKind.QKD_KEY_AVAILABLE: 1}


@pytest.mark.parametrize("detail", [{"key": "c2VjcmV0"}, {"key_buffer": "x"},
                                    {"ciphertext": "x"}, {"sae": b"bytes"},
                                    {"keys": [1, 2]}, {"api": {"nested": 1}}])
def test_detail_refuses_unknown_fields_and_non_scalars(tmp_path, detail):
    recorder = EventRecorder("0", tmp_path / EVENTS_FILE)
    with pytest.raises(EventError):
        recorder.record(EventKind.KEY_RETURNED, "s", **detail)
    assert not (tmp_path / EVENTS_FILE).exists()   # nothing written


def test_check_detail_accepts_scalars():
    assert check_detail({"keys": 2, "bits": 512, "ksid": None, "api": "004"}) == {
        "keys": 2, "bits": 512, "ksid": None, "api": "004"}


def test_rotation_keeps_the_previous_file_and_reads_both(tmp_path):
    path = tmp_path / EVENTS_FILE
    recorder = EventRecorder("0", path, clock=FakeClock(), max_bytes=300)
    for i in range(13):
        recorder.record(EventKind.REQUEST, f"s-{i}", api="014")
    recorder.close()
    assert rotated_path(path).exists()
    assert path.stat().st_size < 300 and rotated_path(path).stat().st_size >= 300
    sessions = [e.session for e in read_events(path)]
    assert sessions == sorted(sessions, key=lambda s: int(s.split("-")[1]))  # oldest first
    assert sessions[-1] == "s-12"
    assert len(sessions) < 13   # older rotations are dropped: the log is bounded


def test_torn_and_foreign_lines_are_skipped():
    good = json.dumps(Event(1.0, "0", EventKind.REQUEST, "s").to_json())
    events = parse_lines([good, '{"t": 2, "node": "0", "event": "nonsense"}', good[:20], ""])
    assert len(events) == 1 and events[0].session == "s"


def test_resolve_sessions_renames_pending_ids_from_the_authenticated_event():
    events = [Event(1.0, "2", EventKind.REQUEST, "pending:p"),
              Event(1.2, "2", EventKind.REQUEST, "pending:p"),
              Event(1.5, "0", EventKind.PATH_CONFIGURED, "S"),
              Event(1.6, "2", EventKind.AUTHENTICATED, "S", {"pending": "pending:p"}),
              Event(1.7, "2", EventKind.REQUEST, "pending:other")]
    assert [e.session for e in resolve_sessions(events)] == ["S", "S", "S", "S",
                                                            "pending:other"]


def test_collect_events_merges_nodes_sorted_and_filtered(tmp_path):
    for node, t0 in (("0", 10.0), ("1", 9.0)):
        recorder = EventRecorder(node, tmp_path / node / EVENTS_FILE, clock=FakeClock(t0))
        recorder.record(EventKind.REQUEST, f"pending:{node}")
        recorder.record(EventKind.AUTHENTICATED, "S", pending=f"pending:{node}")
        recorder.close()
    events = collect_events({n: tmp_path / n for n in ("0", "1", "2")})
    assert [(e.t, e.node) for e in events] == [(9.5, "1"), (10.0, "1"), (10.5, "0"),
                                               (11.0, "0")]
    assert {e.session for e in events} == {"S"}
    assert [e.t for e in collect_events({"0": tmp_path / "0"}, since=10.9)] == [11.0]
