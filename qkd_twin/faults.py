"""Fault and attack records of the emulated physical plane, kept in files.

One JSON file per physical link under ``DIR/twin/faults/``, named after the link's two node
names in sorted order (``A--B.json``), holding an append-only list of records::

    {"link": ["A", "B"],
     "records": [{"seq": 1, "kind": "eavesdrop", "value": 0.2,
                  "effective_time": 1764213000.5, "effective_block": 7056852002,
                  "block_seconds": 0.25, "created_at": 1764213000.21}, ...]}

``effective_time`` is a block boundary at least one whole block in the future when the record
is written; a module applies the record to every block that *starts* at or after it
(``first_affected_block``), so both ends of a link switch on the same block whatever the
moment each one reads the file. The state of a link at block ``n`` is the fold of the records
in effect (:func:`fault_state_at`); :func:`apply_faults` turns it into link parameters.

Kinds: ``link-down`` / ``link-up`` (fiber cut and repair), ``loss`` (extra channel loss in dB,
absolute, 0 removes it), ``eavesdrop`` (intercept-resend on a fraction of the pulses, 0
removes it), ``clear`` (everything back to normal). Writers hold an exclusive ``flock`` on the
file's ``.lock`` sibling and replace the file atomically, so readers never see half a file.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from qkd_twin.errors import FaultFileError
from qkd_twin.physics import LinkParameters

#: Block length of the emulated modules (seconds); block n covers [n*Δ, (n+1)*Δ) Unix time.
DEFAULT_BLOCK_SECONDS = 0.25
#: How many whole blocks ahead of "now" a new fault takes effect.
LEAD_BLOCKS = 1


class FaultKind(str, Enum):
    """What a fault record does."""

    LINK_DOWN = "link-down"
    LINK_UP = "link-up"
    EXTRA_LOSS = "loss"
    EAVESDROP = "eavesdrop"
    CLEAR = "clear"


@dataclass(frozen=True)
class FaultRecord:
    """One fault event on one link."""

    seq: int
    kind: FaultKind
    effective_time: float
    effective_block: int
    block_seconds: float
    value: float | None = None
    created_at: float = 0.0

    def first_affected_block(self, block_seconds: float) -> int:
        """Index of the first block (of length ``block_seconds``) this record applies to."""
        if math.isclose(block_seconds, self.block_seconds):
            return self.effective_block
        return math.ceil(self.effective_time / block_seconds - 1e-9)

    def to_json(self) -> dict:
        return {"seq": self.seq, "kind": self.kind.value, "value": self.value,
                "effective_time": self.effective_time, "effective_block": self.effective_block,
                "block_seconds": self.block_seconds, "created_at": self.created_at}

    @classmethod
    def from_json(cls, data: dict) -> FaultRecord:
        try:
            value = data.get("value")
            return cls(seq=int(data["seq"]), kind=FaultKind(data["kind"]),
                       effective_time=float(data["effective_time"]),
                       effective_block=int(data["effective_block"]),
                       block_seconds=float(data["block_seconds"]),
                       value=None if value is None else float(value),
                       created_at=float(data.get("created_at", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise FaultFileError(f"malformed fault record {data!r}: {exc}") from None


@dataclass(frozen=True)
class LinkFaultState:
    """The faults in effect on a link for one block."""

    down: bool = False
    extra_loss_db: float = 0.0
    eavesdrop_fraction: float = 0.0

    @property
    def nominal(self) -> bool:
        return self == LinkFaultState()


_NO_FAULTS = LinkFaultState()


def link_key(node_a: str, node_b: str) -> str:
    """Name of a link's fault file (without ``.json``): the node names sorted, ``A--B``."""
    if not node_a or not node_b or node_a == node_b:
        raise FaultFileError(f"a link joins two different nodes, got {node_a!r}, {node_b!r}")
    for name in (node_a, node_b):
        if "/" in name or name.startswith(".") or "--" in name:
            raise FaultFileError(f"invalid node name {name!r}")
    return "--".join(sorted((node_a, node_b)))


def faults_dir(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / "twin" / "faults"


def fault_file(state_dir: str | os.PathLike[str], node_a: str, node_b: str) -> Path:
    return faults_dir(state_dir) / f"{link_key(node_a, node_b)}.json"


def read_faults(path: str | os.PathLike[str]) -> list[FaultRecord]:
    """Records of one fault file; an absent file means no faults."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as exc:
        raise FaultFileError(f"cannot read fault file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise FaultFileError(f"fault file {path} has no 'records' list")
    return [FaultRecord.from_json(r) for r in data["records"]]


def validate_fault(kind: FaultKind, value: float | None) -> None:
    """Reject values that make no physical sense (clear message for the CLI)."""
    if kind is FaultKind.EXTRA_LOSS:
        if value is None or not (0.0 <= value <= 100.0) or math.isnan(value):
            raise FaultFileError("extra loss must be between 0 and 100 dB")
    elif kind is FaultKind.EAVESDROP:
        if value is None or not (0.0 <= value <= 1.0) or math.isnan(value):
            raise FaultFileError("eavesdropper fraction must be between 0 and 1")
    elif value is not None:
        raise FaultFileError(f"{kind.value} takes no value")


def append_fault(state_dir: str | os.PathLike[str], node_a: str, node_b: str,
                 kind: FaultKind, value: float | None = None, *, now: float | None = None,
                 block_seconds: float = DEFAULT_BLOCK_SECONDS,
                 lead_blocks: int = LEAD_BLOCKS) -> FaultRecord:
    """Add a fault record to a link's file and return it (atomic, locked)."""
    validate_fault(kind, value)
    now = time.time() if now is None else now
    path = fault_file(state_dir, node_a, node_b)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = read_faults(path)
        block = math.floor(now / block_seconds) + 1 + lead_blocks
        record = FaultRecord(seq=(records[-1].seq + 1) if records else 1, kind=kind,
                             effective_time=block * block_seconds, effective_block=block,
                             block_seconds=block_seconds, value=value, created_at=now)
        payload = {"link": sorted((node_a, node_b)),
                   "records": [r.to_json() for r in [*records, record]]}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, path)
    return record


def fault_state_at(records: Iterable[FaultRecord], block_index: int,
                   block_seconds: float = DEFAULT_BLOCK_SECONDS) -> LinkFaultState:
    """Fold the records in effect at ``block_index`` (in their order of effect, then seq)."""
    if not records:            # the usual case, once per block of every link: no fold
        return _NO_FAULTS
    state = LinkFaultState()
    active = [r for r in records if r.first_affected_block(block_seconds) <= block_index]
    for record in sorted(active, key=lambda r: (r.first_affected_block(block_seconds), r.seq)):
        if record.kind is FaultKind.LINK_DOWN:
            state = dataclasses.replace(state, down=True)
        elif record.kind is FaultKind.LINK_UP:
            state = dataclasses.replace(state, down=False)
        elif record.kind is FaultKind.EXTRA_LOSS:
            state = dataclasses.replace(state, extra_loss_db=float(record.value or 0.0))
        elif record.kind is FaultKind.EAVESDROP:
            state = dataclasses.replace(state, eavesdrop_fraction=float(record.value or 0.0))
        elif record.kind is FaultKind.CLEAR:
            state = LinkFaultState()
    return state


def apply_faults(params: LinkParameters, state: LinkFaultState) -> LinkParameters:
    """Link parameters with the fault's extra loss and eavesdropper (a cut is not physics:
    the module stops producing key)."""
    return params.replace(extra_loss_db=params.extra_loss_db + state.extra_loss_db,
                          eavesdrop_fraction=state.eavesdrop_fraction)


class FaultWatcher:
    """Re-reads a link's fault file when it changes (cheap ``stat`` per call)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._path = Path(path) if path is not None else None
        self._stamp: tuple[int, int, int] | None = None
        self._records: list[FaultRecord] = []

    @property
    def path(self) -> Path | None:
        return self._path

    def records(self) -> list[FaultRecord]:
        """Current records; a malformed file keeps the last good ones."""
        if self._path is None:
            return []
        try:
            st = self._path.stat()
        except FileNotFoundError:
            self._stamp, self._records = None, []
            return []
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            try:
                self._records = read_faults(self._path)
                self._stamp = stamp
            except FaultFileError:
                pass
        return self._records

    def state_at(self, block_index: int, block_seconds: float) -> LinkFaultState:
        return fault_state_at(self.records(), block_index, block_seconds)
