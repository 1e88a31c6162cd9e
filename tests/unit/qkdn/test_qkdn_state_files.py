"""write_json_atomic: the same data back in every form; fsync only when durable."""

import json
import os

import pytest

from qkdn.state_files import read_json, write_json_atomic

DATA = {"b": [1, 2, {"x": None}], "a": "é", "n": 1.5}


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("durable", [False, True])
def test_written_data_reads_back_whole(tmp_path, monkeypatch, durable, compact):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "sub" / "running.json"
    write_json_atomic(path, DATA, mode=0o600, durable=durable, compact=compact)
    assert read_json(path) == DATA
    assert (path.stat().st_mode & 0o777) == 0o600
    assert bool(synced) is durable
    text = path.read_text()
    assert (text.count("\n") == 1) is compact
    assert list(json.loads(text)) == ["a", "b", "n"]   # keys sorted either way
    assert [p.name for p in path.parent.iterdir()] == ["running.json"]   # no temp file left
