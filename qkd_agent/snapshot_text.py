"""JSON text of configuration snapshots, reusing the text of unchanged list entries.

Edits copy on write (:mod:`qkd_agent.edit_operations`), so a candidate shares every list
entry the edit did not touch with the running snapshot, as the very same object. Each
validation needs the whole candidate as JSON text for libyang; :class:`SnapshotText` keeps
the text of each list entry of the running snapshot keyed by object identity and serialises
only what changed (an edit adding one application re-encodes one entry, not two hundred).
"""

from __future__ import annotations

import json
from typing import Any

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class SnapshotText:
    """Serialiser with a per-entry text cache for one snapshot lineage."""

    def __init__(self) -> None:
        # id(entry) -> (entry, text); the entry is kept so that its id cannot be reused.
        self._cache: dict[int, tuple[dict[str, Any], str]] = {}

    def text(self, snapshot: dict[str, Any]) -> tuple[str, dict[int, tuple[dict[str, Any], str]]]:
        """The JSON text of ``snapshot`` and the entry cache to keep if it is committed."""
        fresh: dict[int, tuple[dict[str, Any], str]] = {}
        return self._object(snapshot, fresh), fresh

    def adopt(self, cache: dict[int, tuple[dict[str, Any], str]]) -> None:
        """Keep the entry texts of the snapshot just committed (drop the older ones)."""
        self._cache = cache

    def _object(self, obj: dict[str, Any], fresh: dict[int, tuple[dict[str, Any], str]]) -> str:
        parts = []
        for key, value in obj.items():
            if isinstance(value, dict):
                encoded = self._object(value, fresh)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                encoded = "[" + ",".join(self._entry(entry, fresh) for entry in value) + "]"
            else:
                encoded = _dumps(value)
            parts.append(f"{_dumps(key)}:{encoded}")
        return "{" + ",".join(parts) + "}"

    def _entry(self, entry: dict[str, Any], fresh: dict[int, tuple[dict[str, Any], str]]) -> str:
        cached = self._cache.get(id(entry))
        if cached is not None and cached[0] is entry:
            text = cached[1]
        else:
            text = self._object(entry, fresh)
        fresh[id(entry)] = (entry, text)
        return text
