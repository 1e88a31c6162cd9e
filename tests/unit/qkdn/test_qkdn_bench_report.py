import pytest

from bench.report import format_table, issue_named_rows, percentile, row


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([5, 1], 50) == 3
    assert percentile([0, 10], 99) == pytest.approx(9.9)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_row_from_samples_and_table():
    r = row("agent.get_p50_ms", 2.0, "ms", target="<= 10", meets=True, samples=[1, 2, 3])
    assert r["p50"] == 2 and r["runs"] == 3 and r["p99"] == pytest.approx(2.98)
    assert "agent.get_p50_ms" in format_table([r])


def test_issue_named_rows_repeat_a_row_in_the_issue_unit():
    rows = [row("controller.reroute_ms_10_sessions_p95", 40.0, "ms", target="<= 1000",
                meets=True, samples=[30.0, 40.0, 50.0]),
            {**row("relay.e2e_rate_over_bottleneck", 0.94, "ratio", target=">= 0.9", meets=True),
             "p50": None, "p99": None}]   # kms_bench's rows may have no percentiles
    extra = {r["name"]: r for r in issue_named_rows(rows)}
    assert set(extra) == {"controller.reroute_p95_s", "relay.e2e_over_bottleneck"}
    reroute = extra["controller.reroute_p95_s"]
    assert reroute["value"] == pytest.approx(0.04) and reroute["unit"] == "s"
    assert reroute["p99"] == pytest.approx(rows[0]["p99"] / 1000)
    assert reroute["same_as"] == "controller.reroute_ms_10_sessions_p95" and reroute["meets"]
    assert extra["relay.e2e_over_bottleneck"]["value"] == 0.94
    assert extra["relay.e2e_over_bottleneck"]["p99"] is None
    assert issue_named_rows([]) == []
