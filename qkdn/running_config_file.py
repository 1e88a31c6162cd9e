"""A node's running configuration on disk: ``running.json`` plus a journal of the changes.

Every commit of the node's datastore must be on disk before the agent replies (a node
process killed right after its ``<ok/>`` restarts with that configuration). Writing the
whole configuration per commit cost O(sessions at the node): 0.3 ms with one session, ~6 ms
with 200 (docs/agent.md), on the edit-config's path. Here a commit appends only what changed
— the list entries added, replaced or removed, the leaves set or deleted — as one JSON line
to ``running.journal`` (one ``write`` on an ``O_APPEND`` descriptor, no ``fsync``: like the
whole file before, it survives a crash of the process, not of the OS). When the journal has
grown to the size of ``running.json`` (and on start and at a clean stop) the whole
configuration is written again, atomically, and the journal emptied: O(1) amortised per
commit.

On start :func:`load_running` reads ``running.json`` and replays the journal. Changes are
"set this value at this path" or "delete this path", last writer wins per path, so
replaying changes that ``running.json`` already holds (a crash between rewriting it and
emptying the journal) gives the same configuration. A torn last line (the process died in
the middle of a commit that was never acknowledged) is ignored.

Paths are lists of RFC 7951 member names; a list entry is selected by a JSON object of its
key leaves (``["etsi-qkd-sdn-node:qkd_node", "qkd_applications", "qkd_app", {"app_id":
"..."}]``). The keys of each list come from the YANG schema (:func:`list_keys`); a list whose
keys are not known is written whole when it changes.

The datastore's snapshots are copy-on-write: an entry an edit did not touch is the same
object in the old and the new snapshot, so :func:`config_changes` compares by identity
first and looks inside changed containers only.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: schema path (RFC 7951 member names, no list selectors) → the list's key leaf names
ListKeys = Mapping[tuple[str, ...], tuple[str, ...]]
Path_ = list[Any]
Change = dict[str, Any]   # {"p": path, "v": value} (set) or {"p": path} (delete)

_MISSING = object()
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: the journal is folded into running.json once it holds this many bytes at least ...
MIN_COMPACT_BYTES = 64 * 1024
#: ... and at least as many as running.json itself (amortised O(1) per commit)
COMPACT_RATIO = 1.0


def list_keys(root: Any) -> dict[tuple[str, ...], tuple[str, ...]]:
    """The key leaves of every configuration list under ``root`` (a
    :class:`qkd_agent.schema_tree.SchemaNode`), by schema path of member names."""
    out: dict[tuple[str, ...], tuple[str, ...]] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        for name, child in node.children_by_json.items():
            if not child.config:
                continue
            here = (*path, name)
            if child.keys:
                out[here] = tuple(child.keys)
            if child.children_by_json:
                walk(child, here)
    walk(root, ())
    return out


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any],
                   keys: ListKeys) -> list[Change]:
    """What turns ``old`` into ``new`` (RFC 7951 JSON), as set/delete changes.

    >>> keys = {("n", "app"): ("id",)}
    >>> a = {"id": "a", "x": 1}
    >>> config_changes({"n": {"app": [a]}}, {"n": {"app": [a, {"id": "b"}]}}, keys)
    [{'p': ['n', 'app', {'id': 'b'}], 'v': {'id': 'b'}}]
    >>> config_changes({"n": {"app": [a], "loc": "x"}}, {"n": {"app": []}}, keys)
    [{'p': ['n', 'app', {'id': 'a'}]}, {'p': ['n', 'loc']}]
    """
    out: list[Change] = []
    _diff_object(old, new, [], (), keys, out)
    return out


def _diff_object(old: Mapping[str, Any], new: Mapping[str, Any], path: Path_,
                 schema: tuple[str, ...], keys: ListKeys, out: list[Change]) -> None:
    for name, value in new.items():
        before = old.get(name, _MISSING)
        if before is value:
            continue
        here, here_schema = [*path, name], (*schema, name)
        entry_keys = keys.get(here_schema)
        if isinstance(value, dict) and isinstance(before, dict):
            _diff_object(before, value, here, here_schema, keys, out)
        elif entry_keys and isinstance(value, list) and isinstance(before, list) \
                and all(isinstance(e, dict) for e in value) \
                and all(isinstance(e, dict) for e in before):
            _diff_list(before, value, here, here_schema, entry_keys, keys, out)
        elif before is _MISSING or before != value:
            out.append({"p": here, "v": value})
    for name in old:
        if name not in new:
            out.append({"p": [*path, name]})


def _selector(entry: Mapping[str, Any], entry_keys: tuple[str, ...]) -> dict[str, Any] | None:
    try:
        return {k: entry[k] for k in entry_keys}
    except KeyError:
        return None


def _diff_list(old: list[dict[str, Any]], new: list[dict[str, Any]], path: Path_,
               schema: tuple[str, ...], entry_keys: tuple[str, ...], keys: ListKeys,
               out: list[Change]) -> None:
    """Entries kept are the same objects (copy on write): matched by identity first, so only
    the added, replaced and removed entries are keyed and compared (O(change) dict work)."""
    def key_of(entry: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_dumps(entry.get(k)) for k in entry_keys)

    old_ids, new_ids = {id(e) for e in old}, {id(e) for e in new}
    removed = {key_of(e): e for e in old if id(e) not in new_ids}
    for entry in new:
        if id(entry) in old_ids:
            continue
        selector = _selector(entry, entry_keys)
        if selector is None:              # not keyed as the schema says: the whole list
            out.append({"p": path, "v": new})
            return
        previous = removed.pop(key_of(entry), None)
        if previous is None:
            out.append({"p": [*path, selector], "v": entry})
        else:
            _diff_object(previous, entry, [*path, selector], schema, keys, out)
    for entry in removed.values():
        selector = _selector(entry, entry_keys)
        if selector is None:
            out.append({"p": path, "v": new})
            return
        out.append({"p": [*path, selector]})


def apply_changes(config: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """``config`` with ``changes`` applied in order (modified in place and returned).

    >>> c = {"n": {"app": [{"id": "a"}]}}
    >>> apply_changes(c, [{"p": ["n", "app", {"id": "b"}], "v": {"id": "b", "x": 2}},
    ...                   {"p": ["n", "app", {"id": "a"}]}, {"p": ["n", "loc"], "v": "y"}])
    {'n': {'app': [{'id': 'b', 'x': 2}], 'loc': 'y'}}
    """
    for change in changes:
        _apply(config, change["p"], change.get("v", _MISSING))
    return config


def _apply(config: dict[str, Any], path: Path_, value: Any) -> None:
    node: Any = config
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(step, dict):
            if not isinstance(node, list):
                return          # a delete under something already gone (or a bad record)
            index = next((j for j, e in enumerate(node) if isinstance(e, dict)
                          and all(e.get(k) == v for k, v in step.items())), None)
            if last:
                if value is _MISSING:
                    if index is not None:
                        del node[index]
                elif index is None:
                    node.append(value)
                else:
                    node[index] = value
                return
            if index is None:
                if value is _MISSING:
                    return
                node.append(dict(step))
                index = len(node) - 1
            node = node[index]
            continue
        if not isinstance(node, dict):
            return
        if last:
            if value is _MISSING:
                node.pop(step, None)
            else:
                node[step] = value
            return
        nxt = path[i + 1]
        if step not in node:
            if value is _MISSING:
                return
            node[step] = [] if isinstance(nxt, dict) else {}
        node = node[step]


def _write_text_atomic(path: Path, text: str, mode: int) -> None:
    """Readers see the old or the new file, never a part; no ``fsync`` (survives a crash of
    the process, as ``qkdn.state_files.write_json_atomic(durable=False)``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        data = text.encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_journal(path: Path) -> list[Change]:
    """The changes of a journal file ([] when there is none); a torn last line is ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    changes: list[Change] = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number >= len(lines) - 2:      # the last line, cut short by a crash
                log.warning("%s: torn last record ignored (%d bytes)", path, len(line))
                break
            raise
        changes.extend(record["c"])
    return changes


def load_running(json_path: Path, journal_path: Path) -> dict[str, Any] | None:
    """The configuration last committed: ``running.json`` with the journal replayed (None
    when neither exists)."""
    config: dict[str, Any] | None
    try:
        config = json.loads(json_path.read_text())
    except FileNotFoundError:
        config = None
    changes = read_journal(journal_path)
    if changes:
        config = apply_changes(config if config is not None else {}, changes)
    return config


class RunningConfigFile:
    """Keeps ``running.json`` + ``running.journal`` in step with a datastore's commits.

    :meth:`commit` (the datastore listener, called in commit order) appends the changes of one
    commit; :meth:`write_whole` rewrites the file and empties the journal (at start, when the
    journal has grown, at :meth:`close`). Not thread-safe by itself: the datastore calls its
    listeners one at a time, under its lock.
    """

    def __init__(self, json_path: Path, journal_path: Path, keys: ListKeys) -> None:
        from qkd_agent.snapshot_text import SnapshotText

        self.json_path = Path(json_path)
        self.journal_path = Path(journal_path)
        self._keys = keys
        self._text = SnapshotText()   # entry texts reused between whole writes
        self._fd: int | None = None
        self._journal_bytes = 0
        self._whole_bytes = 0
        self.whole_writes = 0         #: times running.json was rewritten (tests, diagnostics)
        self.appends = 0              #: journal records written

    def write_whole(self, config: Mapping[str, Any]) -> None:
        """``running.json`` := ``config`` (atomically), then the journal emptied."""
        text, entries = self._text.text(dict(config))
        self._text.adopt(entries)
        _write_text_atomic(self.json_path, text + "\n", mode=0o600)
        self._whole_bytes = len(text)
        fd = self._journal_fd()
        os.ftruncate(fd, 0)
        self._journal_bytes = 0
        self.whole_writes += 1

    def commit(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """Record the commit ``old`` → ``new`` before the reply (journal line, or the whole
        file when the journal has outgrown it)."""
        changes = config_changes(old, new, self._keys)
        if not changes:
            return
        threshold = max(MIN_COMPACT_BYTES, COMPACT_RATIO * self._whole_bytes)
        if self._journal_bytes >= threshold:
            self.write_whole(new)
            return
        line = (_dumps({"c": changes}) + "\n").encode()
        written = os.write(self._journal_fd(), line)
        if written != len(line):   # a short write to a regular file: disk full
            raise OSError(f"{self.journal_path}: short write ({written} of {len(line)})")
        self._journal_bytes += written
        self.appends += 1

    def close(self, config: Mapping[str, Any] | None = None) -> None:
        """Fold the journal into ``running.json`` (when ``config`` is given) and close."""
        try:
            if config is not None:
                self.write_whole(config)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _journal_fd(self) -> int:
        if self._fd is None:
            self.journal_path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                               0o600)
        return self._fd
