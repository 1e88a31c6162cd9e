"""KM telemetry without sockets: which events a state change records, key availability per
session, counters, and the scrape-time collector."""

from __future__ import annotations

from dataclasses import dataclass

from kms.errors import InsufficientKey, NoRoute, RateLimited, SessionError
from kms.key_store import StoreLevels
from kms.session import KmSession, SessionEvent, SessionState, Transition
from kms.telemetry import KEY_AVAILABLE_BYTES, KmTelemetry, outcome_of
from qkdn.event_log import EventKind, EventRecorder
from qkdn.metrics import render, sample_value


@dataclass
class FakeStore:
    qkdl_id: str
    out: int = 0
    inc: int = 0

    def levels(self) -> StoreLevels:
        return StoreLevels(self.qkdl_id, self.out, self.inc, 1000, 3, 7, 0)


def _t(sid, old, event, new):
    return Transition(sid, old, event, new, 0.0)


def _telemetry():
    return KmTelemetry("0", EventRecorder("0", None))


def _kinds(tel, session=...):
    return [(e.event, e.session) for e in tel.recorder.recent()
            if session is ... or e.session == session]


S, E = SessionState, SessionEvent


def test_pending_session_renamed_is_authenticated_with_its_pending_id():
    tel = _telemetry()
    tel.request("pending:p", "014", "enc_keys", "sae-0")
    tel.session_renamed("pending:p", "S")
    store = FakeStore("l1", out=KEY_AVAILABLE_BYTES)
    tel.transition(_t("S", S.AUTHENTICATING, E.ACCESS_GRANTED, S.USER_ACCEPTED),
                   links=lambda: [store])
    tel.transition(_t("S", S.USER_ACCEPTED, E.CONFIGURED, S.OPERATIVE), links=lambda: [store])
    events = tel.recorder.recent()
    assert [e.event for e in events] == [EventKind.REQUEST, EventKind.AUTHENTICATED,
                                         EventKind.PATH_CONFIGURED,
                                         EventKind.QKD_KEY_AVAILABLE]
    assert events[1].detail == {"pending": "pending:p"}
    assert events[2].detail == {"qkdl_ids": "l1"}


def test_a_relay_or_slave_end_is_configured_but_not_authenticated():
    tel = _telemetry()
    tel.transition(_t("S", S.AUTHENTICATING, E.ACCESS_GRANTED, S.USER_ACCEPTED),
                   links=list)
    tel.transition(_t("S", S.USER_ACCEPTED, E.CONFIGURED, S.OPERATIVE), links=list)
    assert [k for k, _ in _kinds(tel)] == [EventKind.PATH_CONFIGURED,
                                           EventKind.QKD_KEY_AVAILABLE]


def test_a_request_without_controller_is_authenticated_on_the_spot():
    tel = _telemetry()
    tel.session_requested("D")
    tel.transition(_t("D", S.AUTHENTICATING, E.ACCESS_GRANTED, S.USER_ACCEPTED),
                   links=list)
    assert _kinds(tel) == [(EventKind.AUTHENTICATED, "D")]


def test_key_available_waits_for_every_link_of_the_session():
    tel = _telemetry()
    left, right = FakeStore("l1"), FakeStore("l2", inc=KEY_AVAILABLE_BYTES)
    tel.path_configured("S", [left, right])
    assert _kinds(tel, "S") == [(EventKind.PATH_CONFIGURED, "S")]
    tel.key_material("l2")   # first block of l2: link-level event only
    assert _kinds(tel) == [(EventKind.PATH_CONFIGURED, "S"), (EventKind.QKD_KEY_AVAILABLE, None)]
    left.out = KEY_AVAILABLE_BYTES - 1
    tel.key_material("l1")
    assert (EventKind.QKD_KEY_AVAILABLE, "S") not in _kinds(tel)
    left.out = KEY_AVAILABLE_BYTES
    tel.key_material("l1")
    tel.key_material("l1")
    assert _kinds(tel).count((EventKind.QKD_KEY_AVAILABLE, "S")) == 1
    assert _kinds(tel).count((EventKind.QKD_KEY_AVAILABLE, None)) == 2   # once per link


def test_termination_recorded_once_and_stops_watching():
    tel = _telemetry()
    store = FakeStore("l1")
    tel.path_configured("S", [store])
    tel.transition(_t("S", S.OPERATIVE, E.CLOSED, S.TERMINATED), links=list)
    store.out = 500
    tel.key_material("l1")
    kinds = _kinds(tel, "S")
    assert kinds == [(EventKind.PATH_CONFIGURED, "S"), (EventKind.SESSION_TERMINATED, "S")]
    assert tel.recorder.recent()[1].detail == {"reason": "closed"}


def test_counters_relay_and_keys():
    tel = _telemetry()
    tel.count_request("014", "enc_keys", "delivered")
    tel.key_returned("S", "014", "enc_keys", "sae-0", 4, 1024)
    tel.relay_hop("source", "S", "1", 4)
    tel.relay_hop("relay", "S", "2", 4)
    text = render(tel.registry)
    assert sample_value(text, "qkdn_km_requests_total", outcome="delivered") == 1
    assert sample_value(text, "qkdn_km_key_bits_delivered_total", api="014") == 1024
    assert sample_value(text, "qkdn_km_relay_keys_total", role="source") == 4
    assert sample_value(text, "qkdn_km_events_total", event="relay_hop_received") == 1
    assert [e.event for e in tel.recorder.recent()] == [EventKind.KEY_RETURNED,
                                                        EventKind.RELAY_HOP_RECEIVED]


def test_outcome_labels():
    assert outcome_of(None) == "delivered"
    assert outcome_of(InsufficientKey("x")) == "insufficient-key"
    assert outcome_of(NoRoute("x")) == "no-route"
    assert outcome_of(SessionError("x")) == "not-authorised-yet"
    assert outcome_of(RateLimited("x")) == "rate-limited"


class FakeKm:
    def __init__(self):
        self.relay = type("R", (), {"rejected_messages": 2})()
        self._sessions = {"a": KmSession("a", frozenset(), clock=lambda: 0.0),
                          "b": KmSession("b", frozenset(), clock=lambda: 0.0)}
        self._sessions["b"].configure(None)

    def link_levels(self):
        return [FakeStore("l1", out=10, inc=20).levels()]

    def sessions(self):
        return self._sessions


def test_collector_reads_levels_at_scrape_time():
    tel = _telemetry()
    km = FakeKm()
    tel.bind(km)
    tel.bind(km)   # once only
    text = render(tel.registry)
    assert sample_value(text, "qkdn_km_key_store_bytes", qkdl_id="l1", half="outgoing") == 10
    assert sample_value(text, "qkdn_km_key_store_bytes", qkdl_id="l1", half="incoming") == 20
    assert sample_value(text, "qkdn_km_key_store_capacity_bytes", qkdl_id="l1") == 1000
    assert sample_value(text, "qkdn_km_key_store_consumed_bytes_total", qkdl_id="l1") == 7
    assert sample_value(text, "qkdn_km_sessions", state="authenticating") == 1
    assert sample_value(text, "qkdn_km_sessions", state="operative") == 1
    assert sample_value(text, "qkdn_km_sessions", state="terminated") == 0
    assert sample_value(text, "qkdn_km_relay_rejected_messages_total") == 2
    km._sessions["a"].fire(SessionEvent.CLOSED)
    assert sample_value(render(tel.registry), "qkdn_km_sessions", state="terminated") == 1
