import doctest
from dataclasses import replace

import pytest

from sdn_controller import monitoring
from sdn_controller.link_metrics import LinkMetrics, LinkStatus
from sdn_controller.monitoring import AlarmKind, MonitoringThresholds, Severity, assess
from sdn_controller.topology_db import LinkUpdate, TopologyDb

BASE = LinkMetrics("l1", "a", "b", LinkStatus.ACTIVE, skr=10_000, qber=0.02, updated_at=5.0)
SESSIONS = {"l1": {"s1", "s2"}, "l2": {"s3"}}


DEFAULT_THRESHOLDS = MonitoringThresholds()


def decide(cur, prev=BASE, event="sdqkdn_link_perf_update", th=DEFAULT_THRESHOLDS, **kw):
    return assess(LinkUpdate(prev, cur, event, **kw), th, SESSIONS)


def test_qber_above_threshold_flags_alarms_and_reroutes():
    d = decide(replace(BASE, qber=0.12))
    assert d.flag_changed and d.flag_reason.startswith("QBER 0.1200 above 0.1100")
    assert not d.usable and d.reroute == {"s1", "s2"}
    (alarm,) = d.alarms
    assert alarm.kind is AlarmKind.QBER_HIGH and alarm.severity is Severity.MAJOR
    assert alarm.at == 5.0


def test_configurable_lower_threshold():
    th = MonitoringThresholds(qber_alarm=0.05)
    assert decide(replace(BASE, qber=0.06), th=th).reroute == {"s1", "s2"}
    assert decide(replace(BASE, qber=0.06)).reroute == frozenset()
    with pytest.raises(ValueError):
        MonitoringThresholds(qber_alarm=0.6)
    with pytest.raises(ValueError):
        MonitoringThresholds(qber_alarm=0.05, qber_clear=0.06)


def test_hysteresis_before_clearing_the_flag():
    flagged = replace(BASE, qber=0.12, flag_reason="QBER 0.1200 above 0.1100: x")
    d = decide(replace(flagged, qber=0.10), prev=flagged)
    assert not d.flag_changed and not d.usable and d.alarms == ()
    d = decide(replace(flagged, qber=0.08), prev=flagged)
    assert d.flag_changed and d.flag_reason is None and d.usable
    assert d.alarms[0].kind is AlarmKind.QBER_CLEARED and d.reroute == frozenset()


def test_link_down_and_restored():
    down = replace(BASE, status=LinkStatus.OFF, down_reason="fiber cut")
    d = decide(down, event="sdqkdn_link_down")
    assert not d.usable and d.reroute == {"s1", "s2"} and not d.flag_changed
    assert [a.kind for a in d.alarms] == [AlarmKind.LINK_DOWN]
    d = decide(BASE, prev=down, event="event")
    assert d.usable and [a.kind for a in d.alarms] == [AlarmKind.LINK_RESTORED]


def test_overloaded_only_alarms_once_and_keeps_sessions():
    over = replace(BASE, overloaded=True, expected_consumption=20_000)
    d = decide(over, event="sdqkdn_link_overloaded")
    assert d.usable and d.reroute == frozenset()
    assert [a.kind for a in d.alarms] == [AlarmKind.LINK_OVERLOADED]
    assert decide(over, prev=over).alarms == ()


def test_out_of_key_reroutes_and_agent_alarm_passes_on():
    dry = replace(BASE, status=LinkStatus.PASSIVE, skr=0, eskr=0, stored_bits=0)
    assert decide(dry).reroute == {"s1", "s2"}
    d = decide(BASE, event="alarm", message="module temperature", severity="MAJOR")
    assert [(a.kind, a.severity) for a in d.alarms] == [(AlarmKind.AGENT_ALARM, Severity.MAJOR)]


def test_with_topology_db_round_trip():
    db = TopologyDb.open(clock=lambda: 7.0)
    db.ingest_node({"etsi-qkd-sdn-node:qkd_node": {"qkdn_id": "a", "qkd_links": {"qkd_link": [
        {"qkdl_id": "l1", "qkdl_remote": {"qkdn_id": "b"}, "qkdl_status": "ACTIVE",
         "qkdl_performance": {"skr": 5000}}]}}})
    (update,) = db.apply_notification({"etsi-qkd-sdn-node:sdqkdn_link_perf_update": {
        "qkd_link": {"qkdl_id": "l1", "performance": {"skr": 5000, "phys_perf": [
            {"perf_type": "etsi-qkd-node-types:QBER", "value": "0.25"}]}}}}, node_id="a")
    d = assess(update, MonitoringThresholds(), SESSIONS)
    assert d.flag_changed
    assert not db.set_flag(d.qkdl_id, d.flag_reason).usable
    db.close()


def test_docstring_examples_run():
    assert doctest.testmod(monitoring).failed == 0
