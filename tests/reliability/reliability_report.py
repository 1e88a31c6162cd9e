"""Figures of the reliability suite: merged into ``bench/reliability.json`` as
``{"items": {item: {run: figures}}}`` (run = "short" for make test, "long" for make
reliability), leaving every other item and run as it was."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPORT = Path(__file__).resolve().parents[2] / "bench" / "reliability.json"


def record(item: str, run: str, figures: dict[str, Any], path: Path = REPORT) -> None:
    """Merge ``figures`` under ``items.item.run`` (with a timestamp and the load average)."""
    try:
        existing = json.loads(path.read_text())
    except (OSError, ValueError):
        existing = {}
    if not isinstance(existing, dict):
        existing = {}
    items = existing.setdefault("items", {})
    entry = items.get(item)
    if not isinstance(entry, dict) or not all(isinstance(v, dict) for v in entry.values()):
        entry = {}
    entry[run] = {**figures, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "load_average": round(os.getloadavg()[0], 2)}
    items[item] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
