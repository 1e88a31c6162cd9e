"""The end-to-end set-up benchmark's core (bench/session_setup_bench.py) on a three-node
line brought up like ``qkdn up``: both applications' ETSI 004 OPEN_CONNECT over one hop and
through one trusted node, each answered 0 with one Key_stream_ID, every KM of the path
configured, the session gone everywhere before the next set-up, and the report rows' shapes.
No timing is asserted (the figures are the benchmark's business)."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest
import yaml

from bench.session_setup_bench import LINE6, SetupKind, measure, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

KINDS = (SetupKind("1_hop", "0", "1"), SetupKind("1_trusted_node", "0", "2"))


def line3(tmp_path: Path) -> Path:
    """The first three nodes of topologies/line6.yaml with their links, users and SAEs."""
    raw = yaml.safe_load(LINE6.read_text())
    keep = {"0", "1", "2"}
    raw["name"] = "line3"
    raw["nodes"] = [n for n in raw["nodes"] if n["name"] in keep]
    raw["links"] = [lk for lk in raw["links"] if {lk["a"], lk["b"]} <= keep]
    raw["saes"] = [s for s in raw["saes"] if s["node"] in keep]
    users = {s["user"] for s in raw["saes"]}
    raw["users"] = [u for u in raw["users"] if u["name"] in users]
    path = tmp_path / "line3.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_open_connect_at_both_ends_answers_0_with_one_key_stream_id(tmp_path):
    outcome = measure(1, topology=line3(tmp_path), kinds=KINDS, warmup=0,
                      work_dir=tmp_path, idle_window_s=0.2)
    for kind in KINDS:
        done = outcome.results[kind.name]
        # a set-up not answered 0/0 is retried (MAX_ATTEMPTS); one per round is kept
        assert len(done) == 1, (kind, outcome.failed)
        for result in done:
            first, second = result.answers
            assert (first.status, second.status) == (0, 0), result
            assert first.ksid == second.ksid and uuid.UUID(first.ksid), result
            assert {first.sae_id, second.sae_id} == {f"sae-{kind.source}",
                                                     f"sae-{kind.destination}"}
            assert result.path[0] == kind.source and result.path[-1] == kind.destination
            assert result.ms > 0 and result.controller_cpu_ms >= 0 and result.nodes_cpu_ms >= 0
    assert [r.path for r in outcome.results["1_trusted_node"]] == [("0", "1", "2")]
    for result in outcome.failed:   # what a retried set-up got is kept, never counted
        assert not result.operative
    assert outcome.attempts == 2 + len(outcome.failed)
    # every KM of each path recorded the session's configuration (events.jsonl)
    assert outcome.configured_before_answer[1] == 2
    assert set(outcome.split) == {"1_hop", "1_trusted_node"}
    # both CLOSEs were answered (0, or 4 once the peer's close had ended the session)
    assert outcome.close_statuses and set(outcome.close_statuses) <= {0, 4}
    # the timeline of the last kind's median set-up names both apps and every KM of its path
    places = {where for _, where, _ in outcome.timeline}
    assert {"app sae-0", "app sae-2", "KM 0", "KM 1", "KM 2"} <= places

    rows = {r["name"]: r for r in rows_of(outcome.results, len(outcome.failed),
                                          outcome.attempts, KINDS, split=outcome.split)}
    expected = {f"session.open_connect_{what}_{kind.name}"
                for kind in KINDS
                for what in ("ms", "controller_cpu_ms", "nodes_cpu_ms", "to_configured_ms",
                             "configured_to_answered_ms")} | {"session.open_connect_failed"}
    assert set(rows) == expected
    for r in rows.values():
        assert {"name", "value", "unit", "target", "meets", "runs", "p50", "p99"} <= set(r)
        assert math.isfinite(r["value"])
    trusted = rows["session.open_connect_ms_1_trusted_node"]
    assert trusted["target"] == "<= 100" and trusted["runs"] == 1
    assert trusted["meets"] is (trusted["value"] <= 100)
    assert rows["session.open_connect_failed"]["value"] == len(outcome.failed)
