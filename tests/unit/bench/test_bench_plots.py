import pytest

from bench.plots import plot_delivered_vs_bound, plot_latency_vs_hops

pytest.importorskip("matplotlib")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_latency_vs_hops_is_a_png(tmp_path):
    path = plot_latency_vs_hops([1, 2, 3], [2.0, 4.5, 7.0], [5.0, 9.0, 14.0],
                                tmp_path / "hops.png")
    assert path == tmp_path / "hops.png" and path.read_bytes().startswith(PNG_MAGIC)


def test_delivered_vs_bound_is_a_png(tmp_path):
    path = plot_delivered_vs_bound([0.0, 1.0, 2.0], [0.0, 70.0, 150.0], [0.0, 80.0, 160.0],
                                   [0.0, 48.0, 96.0], tmp_path / "sub" / "multipath.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
