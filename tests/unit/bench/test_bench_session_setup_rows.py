"""Pure parts of the end-to-end set-up benchmark (bench/session_setup_bench.py): the
OPEN_CONNECT body, paths, the controller's metrics, the figure of one set-up, its split at
the configuration, the timeline and the report rows."""

from __future__ import annotations

import pytest

from bench.session_setup_bench import (
    LINE6,
    LINE6_KINDS,
    OpenAnswer,
    SetupResult,
    failure_summary,
    metric_sum,
    open_connect_body,
    rows_of,
    shortest_path,
    split_at_configuration,
    timeline,
)
from qkdn.event_log import Event, EventKind
from qkdn.topology import load_topology

KSID = "6c03ad05-2203-4272-ab5a-9257839d1e76"


def answer(sae: str, status: int, ksid: str | None, sent: float, answered: float) -> OpenAnswer:
    return OpenAnswer(sae, status, ksid, sent, answered, 1000.0 + sent, 1000.0 + answered)


def result(kind: str = "1_hop", path=("0", "1"), statuses=(0, 0), ksids=(KSID, KSID),
           times=((0.0, 0.030), (0.001, 0.040)), cpu=(5.0, 20.0)) -> SetupResult:
    first = answer(f"sae-{path[0]}", statuses[0], ksids[0], *times[0])
    second = answer(f"sae-{path[-1]}", statuses[1], ksids[1], *times[1])
    return SetupResult(kind, tuple(path), (first, second), *cpu)


def test_open_connect_body_is_a_new_stream_of_the_caller():
    assert open_connect_body("sae-0", "sae-5", timeout_ms=500) == {
        "source": "sae-0", "destination": "sae-5",
        "QoS": {"key_chunk_size": 32, "timeout": 500}, "Key_stream_ID": None}


def test_paths_on_line6():
    topology = load_topology(LINE6)
    links = [(lk.a, lk.b) for lk in topology.links]
    assert len(topology.nodes) == 6 and len(links) == 5
    paths = {k.name: shortest_path(links, k.source, k.destination) for k in LINE6_KINDS}
    assert paths == {"1_hop": ("0", "1"), "1_trusted_node": ("0", "1", "2"),
                     "5_hops": ("0", "1", "2", "3", "4", "5")}
    assert shortest_path(links, "3", "3") == ("3",)
    with pytest.raises(ValueError, match="no path"):
        shortest_path(links, "0", "9")
    # every SAE may reach every other: all users allow any peer
    assert {s.node for s in topology.saes} == {n.name for n in topology.nodes}


def test_metric_sum_reads_the_controller_counters_and_gauges():
    text = ('# HELP qkdn_controller_events_total Controller events\n'
            '# TYPE qkdn_controller_events_total counter\n'
            'qkdn_controller_events_total{kind="session-terminated"} 3.0\n'
            'qkdn_controller_events_total{kind="session-admitted"} 4.0\n'
            '# HELP qkdn_controller_sessions Controller sessions by state\n'
            '# TYPE qkdn_controller_sessions gauge\n'
            'qkdn_controller_sessions{state="active"} 1.0\n'
            'qkdn_controller_sessions{state="terminated"} 2.0\n')
    assert metric_sum(text, "qkdn_controller_events_total", {"kind": "session-terminated"}) == 3
    assert metric_sum(text, "qkdn_controller_sessions") == 3
    assert metric_sum(text, "qkdn_controller_sessions", {"state": "accepted"}) == 0


def test_the_figure_runs_from_the_first_send_to_the_last_answer():
    r = result(times=((0.010, 0.050), (0.012, 0.061)))
    assert r.ms == pytest.approx(51.0)
    assert r.operative and r.ksids == {KSID}


@pytest.mark.parametrize("statuses,ksids", [
    ((5, 1), (KSID, KSID)),                       # crossing opens: KSID in use / peer not yet
    ((0, 0), (KSID, "6c03ad05-2203-4272-ab5a-000000000000")),   # two streams
    ((0, -1), (KSID, None)),                      # no 004 answer at one end
])
def test_not_operative_unless_both_0_with_one_key_stream_id(statuses, ksids):
    assert not result(statuses=statuses, ksids=ksids).operative


def events_of(path, configured_at, ksid=KSID):
    return [Event(1000.0 + t, node, EventKind.PATH_CONFIGURED, ksid, {"qkdl_ids": "x"})
            for node, t in zip(path, configured_at)] + \
        [Event(1000.0 + 0.004, path[0], EventKind.REQUEST, ksid,
               {"api": "004", "operation": "open_connect", "sae": f"sae-{path[0]}"})]


def test_split_at_the_last_km_configured():
    r = result(path=("0", "1", "2"), times=((0.0, 0.050), (0.001, 0.060)))
    parts = split_at_configuration(r, events_of(("0", "1", "2"), (0.020, 0.030, 0.025)))
    assert parts == pytest.approx((30.0, 30.0))
    # a KM of the path without its configuration event: no split
    assert split_at_configuration(r, events_of(("0", "1"), (0.020, 0.030))) is None
    # another session's events do not count
    other = events_of(("0", "1", "2"), (0.02, 0.03, 0.025), ksid="00000000-0000-4000-8000-0")
    assert split_at_configuration(r, other) is None


def test_timeline_is_in_time_order_and_names_each_step():
    r = result(path=("0", "1"), times=((0.0, 0.050), (0.001, 0.060)))
    steps = timeline(r, events_of(("0", "1"), (0.020, 0.030)))
    assert [s[0] for s in steps] == sorted(s[0] for s in steps)
    assert steps[0] == (0.0, "app sae-0", "OPEN_CONNECT sent")
    assert steps[-1][1:] == ("app sae-1", "answered status 0")
    assert ("KM 1", "configuration applied (qkd_app, forwarding rule)") in \
        [s[1:] for s in steps]
    assert any(what == "OPEN_CONNECT of sae-0 received" for _, _, what in steps)


def test_rows_p50_ratio_targets_cpu_means_and_failures():
    results = {
        "1_hop": [result(times=((0, t), (0, t))) for t in (0.020, 0.030, 0.040)],
        "1_trusted_node": [result("1_trusted_node", ("0", "1", "2"), times=((0, 0.05),) * 2,
                                  cpu=(10.0, 40.0))],
        "5_hops": [result("5_hops", tuple("012345"), times=((0, t), (0, t)),
                          cpu=(c, 3 * c)) for t, c in ((0.040, 10.0), (0.050, 20.0),
                                                       (0.060, 40.0))],
    }
    failed = [result(statuses=(5, 1))]
    rows = {r["name"]: r for r in rows_of(results, len(failed), 8,
                                          split={"5_hops": (25.0, 20.0)})}
    assert rows["session.open_connect_ms_1_hop"]["value"] == pytest.approx(30.0)
    assert rows["session.open_connect_ms_1_hop"]["runs"] == 3
    trusted = rows["session.open_connect_ms_1_trusted_node"]
    assert (trusted["target"], trusted["meets"]) == ("<= 100", True)
    ratio = rows["session.open_connect_ratio_5_to_1_hop"]
    assert ratio["value"] == pytest.approx(50 / 30, abs=1e-3)
    assert (ratio["target"], ratio["meets"]) == ("<= 1.5", False)
    assert rows["session.open_connect_controller_cpu_ms_5_hops"]["value"] == \
        pytest.approx(70 / 3, abs=1e-3)
    assert rows["session.open_connect_nodes_cpu_ms_5_hops"]["value"] == pytest.approx(70.0)
    assert rows["session.open_connect_to_configured_ms_5_hops"]["value"] == 25.0
    assert rows["session.open_connect_configured_to_answered_ms_5_hops"]["value"] == 20.0
    assert "session.open_connect_to_configured_ms_1_hop" not in rows
    failures = rows["session.open_connect_failed"]
    assert (failures["value"], failures["runs"], failures["meets"]) == (1, 8, False)
    # a failed set-up never counts in a figure
    only_failed = rows_of({"1_hop": failed}, 1, 1)
    assert [r["name"] for r in only_failed] == ["session.open_connect_failed"]


def test_failure_summary_counts_by_kind_and_statuses():
    failed = [result(statuses=(5, 1)), result(statuses=(1, 5)), result(statuses=(5, 1)),
              result("5_hops", tuple("012345"), statuses=(0, 0),
                     ksids=(KSID, "00000000-0000-4000-8000-000000000000")),
              result("5_hops", tuple("012345"), statuses=(-1, 1), ksids=(None, KSID))]
    assert failure_summary(failed) == ("1_hop 3 (1/5 one KSID: 1, 5/1 one KSID: 2), "
                                       "5_hops 2 (-1/1 one KSID: 1, 0/0 2 KSIDs: 1)")
