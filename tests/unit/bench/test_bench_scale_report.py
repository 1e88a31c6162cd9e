"""Scale benchmark report: partial runs still report their figures; errors are counted by
kind; idle CPU is read from /proc."""

import os

from bench.scale_bench import ScaleResult, error_kind, process_cpu_s, rows_of, summary


def result(**kw) -> ScaleResult:
    values = {"nodes": 20, "sessions": 4, "up_s": 12.0, "node_rss_mib": [110.0, 112.0],
                  "node_pss_mib": [28.0, 30.0], "controller_rss_mib": 70.0, "supervisor_rss_mib": 128.0,
                  "total_pss_mib": 700.0, "setup_ms": [100.0, 200.0, 300.0, 400.0], "drive_s": 2.0,
                  "active_sessions": 4, "errors": 0, "node_idle_cpu_pct": 0.2}
    values.update(kw)
    return ScaleResult(**values)


def by_name(rows):
    return {r["name"]: r for r in rows}


def test_a_complete_run_meets_its_targets():
    rows = by_name(rows_of([result()]))
    assert rows["scale.errors"]["meets"] and rows["scale.complete"]["meets"]
    assert rows["scale.sessions_per_s"]["value"] == 2.0
    assert rows["scale.node_idle_cpu_pct"]["meets"]


def test_a_run_stopped_at_a_deadline_reports_what_it_measured():
    partial = result(setup_ms=[150.0], errors=3, active_sessions=1, complete=False,
                     phase="sessions", error_kinds={"no key before the deadline": 2,
                                                    "not started before the deadline": 1})
    failed_up = result(node_rss_mib=[], node_pss_mib=[], setup_ms=[], errors=4,
                       active_sessions=0, complete=False, phase="up", node_idle_cpu_pct=0.0,
                       error_kinds={"bring-up failed": 4})
    rows = by_name(rows_of([partial, failed_up]))
    assert rows["scale.complete"]["value"] == 0 and not rows["scale.complete"]["meets"]
    assert rows["scale.complete"]["phases"] == ["sessions", "up"]
    assert rows["scale.errors"]["value"] == 4 and not rows["scale.errors"]["meets"]
    assert rows["scale.errors"]["kinds"] == {"no key before the deadline": 2,
                                             "not started before the deadline": 1,
                                             "bring-up failed": 4}
    assert rows["scale.setup_ms"]["value"] == 150.0
    line = summary(2, failed_up)
    assert line["node_pss_mib"] is None and line["sessions_with_key"] == 0


def test_error_kinds_and_process_cpu():
    assert error_kind("enc_keys 503: admitting") == "enc_keys 503"
    assert error_kind("dec_keys ConnectionError") == "dec_keys ConnectionError"
    assert process_cpu_s(os.getpid()) > 0
    assert process_cpu_s(2 ** 22 + 12345) == 0.0     # no such process
