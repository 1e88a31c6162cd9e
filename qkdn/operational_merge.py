"""Merging RFC 7951 JSON fragments of operational data from several live sources (pure).

Lists are merged entry by entry on their YANG key, so that a link's status from its QKD
module and its key-store levels from the KM end up in one ``qkd_link`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Key leaf of each list that operational sources contribute to.
LIST_KEYS = {"qkd_link": "qkdl_id", "qkd_interface": "qkdi_id", "qkd_app": "app_id",
             "phys_perf": "perf_type", "statistics": "end_time"}


def merge_operational(*fragments: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``fragments`` left to right; later scalars win, keyed lists are joined."""
    result: dict[str, Any] = {}
    for fragment in fragments:
        _merge_into(result, fragment)
    return result


def _merge_into(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for name, value in source.items():
        if isinstance(value, Mapping):
            existing = target.get(name)
            if not isinstance(existing, dict):
                existing = target[name] = {}
            _merge_into(existing, value)
        elif isinstance(value, list) and _list_key(name) is not None:
            target[name] = _merge_list(target.get(name, []), value, _list_key(name))
        else:
            target[name] = value


def _list_key(name: str) -> str | None:
    return LIST_KEYS.get(name.split(":", 1)[-1])


def _merge_list(existing: list[Any], incoming: list[Any], key: str | None) -> list[Any]:
    merged = [dict(entry) for entry in existing]
    index = {entry.get(key): entry for entry in merged}
    for entry in incoming:
        found = index.get(entry.get(key))
        if found is None:
            found = {}
            merged.append(found)
            index[entry.get(key)] = found
        _merge_into(found, entry)
    return merged
