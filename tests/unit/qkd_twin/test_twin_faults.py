"""Fault records: file format, effective block, folding, effect on the physics."""

from __future__ import annotations

import json
import math

import pytest

from qkd_twin.errors import FaultFileError
from qkd_twin.faults import (
    FaultKind,
    FaultWatcher,
    LinkFaultState,
    append_fault,
    apply_faults,
    fault_file,
    fault_state_at,
    link_key,
    read_faults,
)
from qkd_twin.physics import evaluate, preset

NOW = 1_764_000_000.1  # a fixed clock


def test_twin_link_key_is_order_independent_and_validated():
    assert link_key("B", "A") == link_key("A", "B") == "A--B"
    for bad in (("A", "A"), ("A", ""), ("../x", "B"), ("A--C", "B")):
        with pytest.raises(FaultFileError):
            link_key(*bad)


def test_twin_append_writes_effective_block_in_the_future(tmp_path):
    record = append_fault(tmp_path, "B", "A", FaultKind.LINK_DOWN, now=NOW, block_seconds=0.25)
    assert record.seq == 1
    assert record.effective_block == math.floor(NOW / 0.25) + 2
    assert record.effective_time >= NOW + 0.25
    data = json.loads(fault_file(tmp_path, "A", "B").read_text())
    assert data["link"] == ["A", "B"] and data["records"][0]["kind"] == "link-down"
    second = append_fault(tmp_path, "A", "B", FaultKind.EAVESDROP, 0.2, now=NOW + 1)
    assert second.seq == 2
    assert [r.kind for r in read_faults(fault_file(tmp_path, "A", "B"))] == [
        FaultKind.LINK_DOWN, FaultKind.EAVESDROP]


def test_twin_fault_state_folds_records_by_block(tmp_path):
    down = append_fault(tmp_path, "A", "B", FaultKind.LINK_DOWN, now=NOW)
    loss = append_fault(tmp_path, "A", "B", FaultKind.EXTRA_LOSS, 3.0, now=NOW + 1)
    up = append_fault(tmp_path, "A", "B", FaultKind.LINK_UP, now=NOW + 2)
    eve = append_fault(tmp_path, "A", "B", FaultKind.EAVESDROP, 0.1, now=NOW + 3)
    clear = append_fault(tmp_path, "A", "B", FaultKind.CLEAR, now=NOW + 4)
    records = read_faults(fault_file(tmp_path, "A", "B"))
    assert fault_state_at(records, down.effective_block - 1).nominal
    assert fault_state_at(records, down.effective_block) == LinkFaultState(down=True)
    assert fault_state_at(records, loss.effective_block) == LinkFaultState(True, 3.0)
    assert fault_state_at(records, up.effective_block) == LinkFaultState(False, 3.0)
    assert fault_state_at(records, eve.effective_block) == LinkFaultState(False, 3.0, 0.1)
    assert fault_state_at(records, clear.effective_block).nominal
    # a module with another block length maps the same instant to its own block
    assert fault_state_at(records, math.ceil(down.effective_time / 0.5), 0.5).down


def test_twin_fault_values_are_validated(tmp_path):
    with pytest.raises(FaultFileError, match="fraction"):
        append_fault(tmp_path, "A", "B", FaultKind.EAVESDROP, 1.5)
    with pytest.raises(FaultFileError, match="dB"):
        append_fault(tmp_path, "A", "B", FaultKind.EXTRA_LOSS, -1)
    with pytest.raises(FaultFileError):
        append_fault(tmp_path, "A", "B", FaultKind.LINK_DOWN, 2.0)
    bad = fault_file(tmp_path, "A", "B")
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("{not json")
    with pytest.raises(FaultFileError):
        read_faults(bad)


def test_twin_watcher_sees_new_records_and_survives_a_bad_file(tmp_path):
    path = fault_file(tmp_path, "A", "B")
    watcher = FaultWatcher(path)
    assert watcher.records() == []
    rec = append_fault(tmp_path, "A", "B", FaultKind.EXTRA_LOSS, 5.0, now=NOW)
    assert watcher.state_at(rec.effective_block, rec.block_seconds).extra_loss_db == 5.0
    path.write_text("garbage")
    assert len(watcher.records()) == 1
    assert FaultWatcher(None).records() == []


def test_twin_faults_change_the_physics():
    params = preset("reference", 20)
    lossy = apply_faults(params, LinkFaultState(extra_loss_db=10.0))
    assert evaluate(lossy).skr_bps < evaluate(params).skr_bps / 5
    tapped = apply_faults(params, LinkFaultState(eavesdrop_fraction=0.2))
    assert evaluate(tapped, mu=0.78).qber == pytest.approx(evaluate(params, mu=0.78).qber
                                                            + 0.05, abs=0.002)
