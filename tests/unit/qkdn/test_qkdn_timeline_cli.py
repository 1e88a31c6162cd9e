"""``qkdn timeline --state-dir DIR``: the KMs' events of a network's state directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qkdn.cli import main
from qkdn.event_log import EVENTS_FILE, EventKind, EventRecorder

PAPER = Path(__file__).resolve().parents[3] / "topologies" / "paper.yaml"


def _state(tmp_path: Path) -> Path:
    shutil.copyfile(PAPER, tmp_path / "topology.yaml")
    clock = iter([100.0, 100.5, 101.0, 101.2, 101.4]).__next__
    for node, rows in (("2", [(EventKind.REQUEST, "pending:p", {"api": "004"}),
                              (EventKind.AUTHENTICATED, "S", {"pending": "pending:p"}),
                              (EventKind.KEY_RETURNED, "S", {"api": "004"})]),
                       ("0", [(EventKind.PATH_CONFIGURED, "S", {}),
                              (EventKind.RELAY_HOP_RECEIVED, "S", {"role": "relay"})])):
        recorder = EventRecorder(node, tmp_path / "nodes" / node / EVENTS_FILE, clock=clock)
        for kind, session, detail in rows:
            recorder.record(kind, session, **detail)
        recorder.close()
    return tmp_path


def test_text_json_and_plot(tmp_path, capsys):
    state = _state(tmp_path)
    assert main(["timeline", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "timeline (seconds from the first session event, 100.000 epoch s" in out
    assert "KM 0" in out and "KM 2" in out
    assert "request 0.000 · authenticated 0.500 · key_returned 1.000" in out
    assert main(["timeline", "--state-dir", str(state), "--json", "--session", "S",
                 "--plot", str(tmp_path / "t.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert [e["event"] for e in events] == ["request", "authenticated", "key_returned",
                                            "path_configured", "relay_hop_received"]
    assert {e["session"] for e in events} == {"S"}   # the pending id resolved
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_no_network(tmp_path, capsys):
    assert main(["timeline", "--state-dir", str(tmp_path)]) == 1
    assert "no network" in capsys.readouterr().out
