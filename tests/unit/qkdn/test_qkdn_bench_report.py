import pytest

from bench.report import format_table, percentile, row


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
