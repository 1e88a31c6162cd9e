"""Scale smoke test: a 4 × 5 grid brought up as real processes (``qkdn up``: supervisor,
20 forked node processes, controller) and 100 ETSI 014 sessions between random SAE pairs
through the real KMs and controller — every session gets a key, identical at the slave, and
all 100 are active at the end. The full 100-node / 1,000-session figure is
``python -m bench.run --only scale`` (docs/benchmarks.md)."""

import pytest

from bench.scale_bench import run_scale

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_twenty_nodes_hundred_sessions(tmp_path):
    result = run_scale(4, 5, 100, workers=16, up_timeout_s=300, drive_timeout_s=300,
                       work_dir=tmp_path)
    assert result.nodes == 20
    assert result.errors == 0, result.error_samples
    assert len(result.setup_ms) == 100
    assert result.active_sessions >= 100
    assert max(result.node_pss_mib) < max(result.node_rss_mib)   # forked: pages shared
