"""Snapshot serialisation with reused entry texts."""

from __future__ import annotations

import json

from qkd_agent.snapshot_text import SnapshotText


def snapshot() -> dict:
    return {"m:top": {"id": "x", "flag": True, "none": [None], "tags": ["a", "b"],
                      "items": [{"k": i, "sub": {"v": "é"}, "inner": [{"q": i}]}
                                for i in range(3)]}}


def test_text_is_the_json_of_the_snapshot() -> None:
    data = snapshot()
    text, _ = SnapshotText().text(data)
    assert json.loads(text) == data


def test_unchanged_entries_reuse_their_text() -> None:
    serialiser = SnapshotText()
    data = snapshot()
    _, cache = serialiser.text(data)
    serialiser.adopt(cache)
    items = data["m:top"]["items"]
    assert {id(entry) for entry in items} <= set(cache)
    # a copy-on-write successor: one entry replaced, the others shared
    successor = {"m:top": dict(data["m:top"], items=[items[0], {"k": 9}, items[2]])}
    cache[id(items[0])] = (items[0], '{"k":0,"marker":1}')  # prove the cached text is used
    text, fresh = serialiser.text(successor)
    assert json.loads(text)["m:top"]["items"] == [{"k": 0, "marker": 1}, {"k": 9}, items[2]]
    assert id(items[1]) not in fresh


def test_cache_entry_for_another_object_with_same_id_is_ignored() -> None:
    serialiser = SnapshotText()
    entry = {"k": 1}
    serialiser.adopt({id(entry): ({"k": "stale"}, '{"k":"stale"}')})
    text, _ = serialiser.text({"m:l": [entry]})
    assert json.loads(text) == {"m:l": [{"k": 1}]}
