"""Emulated QKD modules: one per link end, deterministic from the link's secret seed.

Both ends of a link run the same simulation from the same per-link secret seed
(``DIR/nodes/<node>/links/<qkdl_id>.seed``), block by block, so each node process computes its
own end's key and no key crosses a process boundary. Block ``n`` covers Unix time
``[n Δ, (n+1) Δ)`` (``Δ = block_seconds``, default 0.25 s); it is computed as soon as it has
ended, so the first key arrives within about ``Δ`` of :meth:`QkdModule.start`.

Modes (:class:`ModuleMode`):

``protocol``
    The block's raw detections are emulated from the model (:mod:`qkd_twin.detection`) and the
    full post-processing runs on them: sifting, parameter estimation, Cascade, verification,
    privacy amplification sized from the measured QBER. A block simulates
    ``min(model sifted bits in Δ, max_sifted_bits_per_block)`` sifted bits, so on fast links
    the delivered (``eskr``) rate is a scaled-down sample of the model rate (``skr``); on slow
    links several time blocks are pooled into one post-processing frame of at least
    ``min_frame_bits`` and the key is delivered at the frame's last block.
``rate``
    Key is emitted at the model's secret key rate: every block gets
    ``floor(R Δ (n+1) / 8) - floor(R Δ n / 8)`` bytes drawn from SHAKE-256 of the seed and the
    block index; the QBER reported is sampled binomially around the model QBER over the
    block's sifted bits, and a block whose QBER exceeds the abort threshold yields no key.

A :class:`QkdModule` (stepped by a :class:`~qkd_twin.module_scheduler.ModuleScheduler`: the
node's one thread for all its link ends, or a thread of its own) calls
``sink.deliver(qkdl_id, block_index, key)`` for each
finished block with key, and calls its listeners with :class:`LinkEvent` values (performance
update on significant change, link down/up, aborted block, QBER alarm). Key bytes are never
logged.

Steady-state cadence: the module wakes at the end of every block while key is wanted. With
``ModuleConfig.idle_batch_seconds`` set (node processes set it), once its first
``fine_start_blocks`` blocks are out and while its ``demand`` callable says nobody is short of
key (the link's store holds a reserve), it wakes once per batch instead — at wall-clock
multiples of ``idle_batch_seconds``, the same instants at both ends — and produces every block
that has ended since, in order, handing them to the sink in one call (``deliver_many`` when the
sink has it). Blocks, their key, QBER and events are exactly those of the fine cadence: only
when they become available changes (at most one batch later). A 100-node network on two cores
idled at ~2 % of a core per node with a wake-up and a store transaction per block and link.
A recorded fault (:meth:`QkdModule.fault_changed`) brings a batching module back to the fine
cadence for a few blocks, so its events are not held until the next batch instant.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from qkd_twin.detection import detections_for_sifted, emulate_detections
from qkd_twin.faults import (
    DEFAULT_BLOCK_SECONDS,
    FaultRecord,
    FaultWatcher,
    LinkFaultState,
    apply_faults,
    fault_file,
    fault_state_at,
)
from qkd_twin.module_scheduler import ModuleScheduler
from qkd_twin.physics import (
    DecoyModel,
    LinkParameters,
    LinkPerformance,
    evaluate,
    phase_error_bound,
)
from qkd_twin.postprocessing.pipeline import (
    BlockResult,
    BlockStatus,
    SecurityParameters,
    run_block,
)
from qkd_twin.postprocessing.sifting import sift

log = logging.getLogger(__name__)


class ModuleMode(str, Enum):
    """How a module produces key."""

    PROTOCOL = "protocol"
    RATE = "rate"


class LinkRole(str, Enum):
    """Which end of the link this module is (which party's key it delivers)."""

    TRANSMITTER = "TRANSMITTER"   # Alice
    RECEIVER = "RECEIVER"         # Bob


class LinkStatus(str, Enum):
    """ETSI 015 link-status-types as seen by the module."""

    ACTIVE = "ACTIVE"      # generating key
    PASSIVE = "PASSIVE"    # not generating (cut, or every block aborted)


@dataclass(frozen=True)
class LinkState:
    """What the module publishes about its link (rates in bit/s, QBER as a fraction)."""

    status: LinkStatus
    skr: float
    eskr: float
    qber: float
    block_index: int = -1
    reason: str = ""


class LinkEventKind(str, Enum):
    """Events a module reports to its listeners."""

    PERF_UPDATE = "perf-update"       # status / skr / eskr / QBER changed significantly
    LINK_DOWN = "link-down"           # key generation stopped (fiber cut)
    LINK_UP = "link-up"               # key generation restored
    BLOCK_ABORTED = "block-aborted"   # QBER above threshold or verification failed: no key
    QBER_ALARM = "qber-alarm"         # QBER rose above the alarm threshold (eavesdropping?)
    QBER_CLEARED = "qber-cleared"     # QBER back below the alarm threshold


@dataclass(frozen=True)
class LinkEvent:
    """One event about one link end."""

    kind: LinkEventKind
    qkdl_id: str
    block_index: int
    state: LinkState
    message: str = ""


class KeySink(Protocol):
    """Where a module's key goes (the node's KM key store for this link). A sink may also
    offer ``deliver_many(qkdl_id, [(block_index, key), ...])``, used for a batch."""

    def deliver(self, qkdl_id: str, block_index: int, key: bytes) -> None: ...


def deliver_blocks(sink: KeySink, qkdl_id: str, blocks: list[tuple[int, bytes]]) -> None:
    """Hand ``blocks`` (in order) to ``sink``: one ``deliver_many`` call if it has one."""
    if not blocks:
        return
    many = getattr(sink, "deliver_many", None)
    if many is not None:
        many(qkdl_id, blocks)
        return
    for block_index, key in blocks:
        sink.deliver(qkdl_id, block_index, key)


def batch_wake_time(block: int, block_seconds: float, batch_seconds: float) -> float:
    """When a batching module wakes to produce block ``block``: the first wall-clock multiple
    of ``batch_seconds`` at or after the block's end (the same instant at both link ends).

    >>> batch_wake_time(5, 0.25, 1.0), batch_wake_time(7, 0.25, 1.0), batch_wake_time(8, 0.25, 1.0)
    (2.0, 2.0, 3.0)
    """
    end = (block + 1) * block_seconds
    return math.ceil(end / batch_seconds - 1e-9) * batch_seconds


def reserve_is_low(held_bytes: tuple[int, int], skr_bps: float, reserve_seconds: float) -> bool:
    """Demand rule for a link's store: key is wanted (fine cadence) while either half holds
    less than ``reserve_seconds`` of the link's production (each half gets half the key).

    >>> reserve_is_low((50_000, 50_000), 320_000, 1.0), reserve_is_low((50_000, 10), 320_000, 1.0)
    (False, True)
    """
    reserve = skr_bps * reserve_seconds / 16.0
    return min(held_bytes) < reserve


LinkListener = Callable[[LinkEvent], None]

#: Blocks a module produces in one step at most (10 s of 0.25-s blocks): a module far behind
#: real time catches up in slices, the node's other modules run in between.
MAX_BLOCKS_PER_STEP = 40
#: Blocks at the fine cadence after the link's fault file changed (a fault takes effect at the
#: start of the block after the next one: this covers it with a margin).
FAULT_FINE_BLOCKS = 8


@dataclass(frozen=True)
class ModuleConfig:
    """Everything one link end needs; both ends differ only in ``role``."""

    qkdl_id: str
    role: LinkRole
    params: LinkParameters
    seed: bytes = field(repr=False)      # secret: never in a repr or a log line
    mode: ModuleMode = ModuleMode.RATE
    fault_path: Path | None = None
    block_seconds: float = DEFAULT_BLOCK_SECONDS
    max_sifted_bits_per_block: int = 8192
    min_frame_bits: int = 4096
    max_frame_blocks: int = 240
    decoy: DecoyModel = DecoyModel.VACUUM_WEAK
    security: SecurityParameters = field(default_factory=SecurityParameters)
    qber_alarm: float = 0.05
    perf_change_ratio: float = 0.10    # relative skr change that is "significant"
    eskr_change_ratio: float = 0.25    # relative eskr change (noisy: finite blocks)
    qber_change: float = 0.005         # absolute QBER change that is "significant"
    perf_hold_blocks: int = 4          # min blocks between two perf updates (status: always)
    idle_batch_seconds: float = 0.0    # > 0: steady-state batch period while key is not wanted
    fine_start_blocks: int = 8         # blocks at the fine cadence after start, before batching


@dataclass(frozen=True)
class BlockOutput:
    """One block's product at this end."""

    block_index: int
    key: bytes = field(repr=False)
    status: BlockStatus | None     # None: link down, or a pooled block (no frame end)
    qber: float | None             # measured QBER (None when not measured)
    performance: LinkPerformance | None
    detail: BlockResult | None = None
    down: bool = False


def read_seed(path: str | Path) -> bytes:
    """A link's secret seed file (raw bytes or hex text)."""
    data = Path(path).read_bytes()
    text = data.strip()
    try:
        return bytes.fromhex(text.decode("ascii")) if text else data
    except (UnicodeDecodeError, ValueError):
        return data


def seed_path(state_dir: str | Path, node: str, qkdl_id: str) -> Path:
    """Where ``qkdn up`` keeps a link's secret seed for one of its nodes."""
    return Path(state_dir) / "nodes" / node / "links" / f"{qkdl_id}.seed"


def module_config_for_link(state_dir: str | Path, node: str, peer: str, qkdl_id: str,
                           role: LinkRole, params: LinkParameters,
                           mode: ModuleMode | str = ModuleMode.RATE,
                           **options: Any) -> ModuleConfig:
    """The config of ``node``'s end of the link to ``peer`` in a network's state directory:
    the seed from ``seed_path`` and the fault file of the link (``faults.fault_file``)."""
    return ModuleConfig(qkdl_id=qkdl_id, role=role, params=params,
                        seed=read_seed(seed_path(state_dir, node, qkdl_id)),
                        mode=ModuleMode(mode), fault_path=fault_file(state_dir, node, peer),
                        **options)


class LinkEmulator:
    """The deterministic core of a module: block index → key, QBER and performance."""

    def __init__(self, config: ModuleConfig) -> None:
        if not config.seed:
            raise ValueError("a link needs a non-empty secret seed")
        self.config = config
        self._perf_cache: dict[LinkParameters, LinkPerformance] = {}
        #: the same performance looked up by fault state (no LinkParameters built per block)
        self._perf_by_faults: dict[LinkFaultState, LinkPerformance] = {}
        # one bit generator re-seeded per rate block (setting its state: ~3 µs; building a
        # ``default_rng`` from a 256-bit seed runs a SeedSequence: ~30 µs per block)
        self._rate_bits = np.random.PCG64(0)
        self._rate_rng = np.random.Generator(self._rate_bits)
        # the hash state after the link's constant parts (seed, link id), copied per digest
        self._digest_prefix = hashlib.sha256()
        for part in (b"qkdn-twin", config.seed, config.qkdl_id.encode()):
            self._digest_prefix.update(len(part).to_bytes(4, "big") + part)
        # rate mode's key: AES-256-CTR under one key per link, through a kept ECB encryptor
        # (stateless between whole 16-byte blocks)
        rate_key = self._digest_prefix.copy()
        rate_key.update(len(b"rate-key").to_bytes(4, "big") + b"rate-key")
        self._rate_ecb = Cipher(algorithms.AES(rate_key.digest()), modes.ECB()).encryptor()
        #: counter blocks (block index, i), the low halves filled once; grown when needed
        self._counters = np.empty((1024, 2), dtype=">u8")
        self._counters[:, 1] = np.arange(1024, dtype=np.uint64)

    # -- deterministic randomness -------------------------------------------------------
    def _digest(self, block_index: int, purpose: bytes) -> bytes:
        """SHA-256 over the length-prefixed parts (tag, seed, link id, block, purpose)."""
        h = self._digest_prefix.copy()
        for part in (str(block_index).encode(), purpose):
            h.update(len(part).to_bytes(4, "big") + part)
        return h.digest()

    def block_rng(self, block_index: int, purpose: bytes) -> np.random.Generator:
        return np.random.default_rng(int.from_bytes(self._digest(block_index, purpose), "big"))

    def _reseeded_rate_rng(self, block_index: int, purpose: bytes) -> np.random.Generator:
        """The emulator's own generator, its PCG64 state set from the block's digest (state:
        its first 128 bits, increment: the rest, odd): deterministic per (seed, link, block,
        purpose) like :meth:`block_rng`, without a SeedSequence per block. Valid until the
        next call (one module thread uses it, for one draw)."""
        digest = self._digest(block_index, purpose)
        self._rate_bits.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(digest[:16], "big"),
                      "inc": int.from_bytes(digest[16:], "big") | 1},
            "has_uint32": 0, "uinteger": 0}
        return self._rate_rng

    def _rate_key(self, block_index: int, nbytes: int) -> bytes:
        """``nbytes`` of block key: AES-256 in counter mode under the link's rate key
        (SHA-256 of seed, link and ``rate-key``), counter blocks ``block_index ‖ i`` (two
        64-bit big-endian halves, i = 0, 1, ...): the same bytes at both ends, each block
        computable alone. The counter blocks go through one ECB encryptor kept for the link
        (a CTR encryptor per block cost ~12 µs of set-up for ~3 µs of AES on ~10 kB)."""
        count = -(-nbytes // 16)
        if count > len(self._counters):
            self._counters = np.empty((count, 2), dtype=">u8")
            self._counters[:, 1] = np.arange(count, dtype=np.uint64)
        counters = self._counters[:count]
        counters[:, 0] = block_index
        stream = self._rate_ecb.update(counters.tobytes())
        return stream if len(stream) == nbytes else stream[:nbytes]

    # -- physics --------------------------------------------------------------------------
    def parameters(self, faults: LinkFaultState) -> LinkParameters:
        return apply_faults(self.config.params, faults)

    def performance(self, faults: LinkFaultState) -> LinkPerformance:
        perf = self._perf_by_faults.get(faults)
        if perf is not None:
            return perf
        params = self.parameters(faults)
        perf = self._perf_cache.get(params)
        if perf is None:
            perf = evaluate(params, self.config.decoy)
            self._perf_cache[params] = perf
        self._perf_by_faults[faults] = perf
        return perf

    def frame_blocks(self, perf: LinkPerformance) -> int:
        """Time blocks pooled into one post-processing frame (protocol mode)."""
        per_block = perf.sifted_bps * self.config.block_seconds
        if per_block <= 0:
            return self.config.max_frame_blocks
        return max(1, min(self.config.max_frame_blocks,
                          math.ceil(self.config.min_frame_bits / per_block)))

    # -- one block ------------------------------------------------------------------------
    def run_block(self, block_index: int, faults: LinkFaultState) -> BlockOutput:
        if faults.down:
            return BlockOutput(block_index, b"", None, None, None, down=True)
        perf = self.performance(faults)
        if self.config.mode is ModuleMode.RATE:
            return self._rate_block(block_index, perf)
        return self._protocol_block(block_index, faults, perf)

    def _rate_block(self, n: int, perf: LinkPerformance) -> BlockOutput:
        cfg = self.config
        sifted = max(1, int(perf.sifted_bps * cfg.block_seconds))
        errors = int(self._reseeded_rate_rng(n, b"qber").binomial(sifted, min(1.0, perf.qber)))
        measured = errors / sifted
        if measured > cfg.security.qber_abort or perf.skr_bps <= 0:
            status = (BlockStatus.ABORTED_QBER if measured > cfg.security.qber_abort
                      else BlockStatus.NO_KEY)
            return BlockOutput(n, b"", status, measured, perf)
        per_block = perf.skr_bps * cfg.block_seconds / 8.0
        nbytes = math.floor(per_block * (n + 1)) - math.floor(per_block * n)
        key = self._rate_key(n, nbytes) if nbytes else b""
        return BlockOutput(n, key, BlockStatus.OK if key else BlockStatus.NO_KEY, measured, perf)

    def _protocol_block(self, n: int, faults: LinkFaultState,
                        perf: LinkPerformance) -> BlockOutput:
        cfg = self.config
        frame = self.frame_blocks(perf)
        if (n + 1) % frame:
            return BlockOutput(n, b"", None, None, perf)
        sifted_target = min(cfg.max_sifted_bits_per_block,
                            int(perf.sifted_bps * cfg.block_seconds * frame))
        params = self.parameters(faults)
        quantum = self.block_rng(n, b"quantum")
        count = int(quantum.poisson(detections_for_sifted(params, sifted_target)))
        raw = emulate_detections(params, perf.mu, count, quantum)
        sifted = sift(raw.alice_bits, raw.alice_bases, raw.bob_bits, raw.bob_bases)
        result = run_block(
            sifted, self.block_rng(n, b"public"), security=cfg.security,
            single_photon_fraction=perf.single_photon_fraction,
            phase_error=lambda e: phase_error_bound(params, perf.mu, e, cfg.decoy),
            hash_parties=(cfg.role is LinkRole.TRANSMITTER, cfg.role is LinkRole.RECEIVER))
        own = result.alice_key if cfg.role is LinkRole.TRANSMITTER else result.bob_key
        usable = (own.size // 8) * 8
        key = np.packbits(own[:usable]).tobytes() if result.ok and usable else b""
        if result.status is BlockStatus.ABORTED_QBER:
            measured: float | None = result.sample_qber
        elif result.reconciled_bits == 0:       # frame too short to estimate anything
            measured = None
        else:
            measured = result.measured_qber
        return BlockOutput(n, key, result.status, measured, perf, detail=result)


class QkdModule:
    """A running emulated QKD module for one link end, driven by a
    :class:`~qkd_twin.module_scheduler.ModuleScheduler` (the node's, shared by all its link
    ends, or a thread of its own when none is given).

    Example::

        module = QkdModule(config, sink)            # or QkdModule(..., scheduler=node_s)
        module.add_listener(on_event)
        with module:                 # start() ... stop()
            ...
    """

    def __init__(self, config: ModuleConfig, sink: KeySink,
                 clock: Callable[[], float] = time.time,
                 demand: Callable[[], bool] | None = None,
                 scheduler: ModuleScheduler | None = None) -> None:
        self.config = config
        #: True while someone is short of this link's key (fine cadence); None: never
        self._demand = demand
        self.emulator = LinkEmulator(config)
        self._sink = sink
        self._clock = clock
        self._watcher = FaultWatcher(config.fault_path)
        self._listeners: list[LinkListener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: the node's scheduler (one thread for all its modules); None: a thread of its own
        self._scheduler = scheduler
        self._own_scheduler: ModuleScheduler | None = None
        self._running = False
        self._block = self._first = 0     # next block to produce, first block of this run
        self._warm = False
        self._lagging = False
        self._fine_until = -1             # fine cadence up to this block (a fault recorded)
        self._state = LinkState(LinkStatus.PASSIVE, 0.0, 0.0, 0.0, -1, "starting")
        self._published: LinkState | None = None
        self._published_block = -(1 << 62)
        self._down = False
        self._alarm = False
        #: (block, delivered bits) of the last ``_eskr_window_blocks`` blocks, and their sum
        self._eskr_window: deque[tuple[int, int]] = deque()
        self._eskr_bits = 0
        self._eskr_window_blocks = max(4, round(2.0 / config.block_seconds))
        self.blocks_done = 0
        self.batches = 0          #: wake-ups that produced more than one block
        self.blocks_aborted = 0
        self.delivered_bits = 0
        self.last_detail: BlockResult | None = None

    # -- listeners and state ----------------------------------------------------------
    def add_listener(self, listener: LinkListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    @property
    def state(self) -> LinkState:
        """Latest link state (for the agent's operational data)."""
        with self._lock:
            return self._state

    # -- life cycle -----------------------------------------------------------------------
    def start(self, start_block: int | None = None) -> None:
        """Run from block ``start_block`` (default: the block in progress) on the node's
        :class:`~qkd_twin.module_scheduler.ModuleScheduler`, or on a thread of its own."""
        if self._running:
            return
        first = (math.floor(self._clock() / self.config.block_seconds)
                 if start_block is None else start_block)
        self._block = self._first = first
        self._warm = True
        self._lagging = False
        self._stop.clear()
        self._running = True
        if self._scheduler is None:
            self._own_scheduler = ModuleScheduler(
                self._clock, name=f"qkd-module-{self.config.qkdl_id[:8]}")
        scheduler = self._driver()
        assert scheduler is not None
        scheduler.add(self, self._clock())   # at once: warm the model, then the first block

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if not self._running:
            return
        self._running = False
        if self._own_scheduler is not None:
            self._own_scheduler.stop(timeout)
            self._own_scheduler = None
        elif self._scheduler is not None:
            self._scheduler.remove(self, timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _driver(self) -> ModuleScheduler | None:
        """The scheduler stepping this module: the node's, or its own while running alone."""
        return self._scheduler if self._scheduler is not None else self._own_scheduler

    def fault_changed(self, now: float | None = None) -> None:
        """The link's fault file changed (the node looks at it twice a second): produce the
        next :data:`FAULT_FINE_BLOCKS` blocks at the fine cadence — a fault takes effect one to
        two blocks after it is recorded — and wake now, so that its events come within a block
        of taking effect, not at the next batch instant."""
        block = math.floor((self._clock() if now is None else now) / self.config.block_seconds)
        self._fine_until = block + FAULT_FINE_BLOCKS
        scheduler = self._driver()
        if self._running and scheduler is not None:
            scheduler.wake(self, self.next_wake())

    def _batching(self, block: int, first: int) -> bool:
        """Whether block ``block`` waits for the next batch (steady state, key not wanted)."""
        cfg = self.config
        if cfg.idle_batch_seconds <= cfg.block_seconds or block - first < cfg.fine_start_blocks:
            return False
        if block <= self._fine_until:    # a fault was just recorded
            return False
        if self._demand is None:
            return True
        try:
            return not self._demand()
        except Exception:  # a failing demand probe must not stop key: fine cadence
            log.debug("link %s: demand probe failed", cfg.qkdl_id, exc_info=True)
            return False

    def next_wake(self) -> float:
        """When the block after the last one produced is due: its end (fine cadence) or the
        next batch instant (steady state, key not wanted)."""
        delta = self.config.block_seconds
        if self._batching(self._block, self._first):
            return batch_wake_time(self._block, delta, self.config.idle_batch_seconds)
        return (self._block + 1) * delta

    def step(self, now: float) -> float | None:
        """The scheduler's call: produce every block that has ended by ``now`` (at most
        :data:`MAX_BLOCKS_PER_STEP`, the rest right after the other modules due), deliver
        them in one sink call, report their events; returns the next wake time (None once
        stopped)."""
        if self._stop.is_set():
            return None
        delta = self.config.block_seconds
        if self._warm:   # warm the model (μ optimisation) while the first block is running
            self._warm = False
            try:
                self.emulator.performance(self._watcher.state_at(self._block, delta))
            except Exception:
                log.exception("link %s: link model failed", self.config.qkdl_id)
            return self.next_wake()
        # Never skip a block: the peer end produces every block, so a skipped one would
        # leave key at one end only. A module that fell behind catches up in slices.
        ended = math.floor(now / delta) - self._block
        if ended > 8 and not self._lagging:
            log.warning("link %s: %d blocks behind real time, catching up",
                        self.config.qkdl_id, ended)
        self._lagging = ended > 8
        if ended <= 0:
            return self.next_wake()
        last = self._block + min(ended, MAX_BLOCKS_PER_STEP) - 1
        self._block = self._produce_blocks(self._block, last)
        if ended > MAX_BLOCKS_PER_STEP:
            return now      # more to catch up: after the other modules due now
        return self.next_wake()

    def _run_batch(self, block: int) -> int:
        """Produce every block ended by now from ``block`` on; one sink call. Returns the
        next block to produce."""
        return self._produce_blocks(block,
                                    math.floor(self._clock() / self.config.block_seconds) - 1)

    def _produce_blocks(self, block: int, last: int) -> int:
        """Blocks ``block..last`` in order under one look at the fault file, handed to the
        sink in one call; returns the next block to produce."""
        cfg = self.config
        outputs: list[BlockOutput] = []
        records = self._watcher.records()   # one look at the fault file per batch
        while block <= last and not self._stop.is_set():
            try:
                outputs.append(self._produce(block, records))
            except Exception:  # keep the module alive; the error is the module's, not a key
                log.exception("link %s: block %d failed", cfg.qkdl_id, block)
            block += 1
        try:
            deliver_blocks(self._sink, cfg.qkdl_id,
                           [(out.block_index, out.key) for out in outputs if out.key])
        except Exception:
            log.exception("link %s: delivery of blocks %d..%d failed", cfg.qkdl_id,
                          outputs[0].block_index if outputs else block, block - 1)
        for out in outputs:
            self._account(out)
        if len(outputs) > 1:
            self.batches += 1
        return block

    # -- one block (also callable directly, e.g. in tests) ------------------------------------
    def process_block(self, block: int) -> BlockOutput:
        cfg = self.config
        out = self._produce(block)
        if out.key:
            self._sink.deliver(cfg.qkdl_id, block, out.key)
        self._account(out)
        return out

    def _produce(self, block: int, records: list[FaultRecord] | None = None) -> BlockOutput:
        """Block ``block`` under the faults in effect then (``records``: the fault file's
        records already read for a batch; None: look at the file now)."""
        if records is None:
            faults = self._watcher.state_at(block, self.config.block_seconds)
        else:
            faults = fault_state_at(records, block, self.config.block_seconds)
        return self.emulator.run_block(block, faults)

    def _account(self, out: BlockOutput) -> None:
        cfg = self.config
        events: list[LinkEvent] = []
        n = out.block_index
        self.blocks_done += 1
        self.delivered_bits += 8 * len(out.key)
        if out.detail is not None:
            self.last_detail = out.detail
        window_blocks = self._eskr_window_blocks
        if out.performance is not None and cfg.mode is ModuleMode.PROTOCOL:
            window_blocks = max(window_blocks, 2 * self.emulator.frame_blocks(out.performance))
        window, bits = self._eskr_window, 8 * len(out.key)
        if window and n < window[-1][0]:   # a block out of order (a test's process_block)
            window = self._eskr_window = deque((b, x) for b, x in window if b > n - window_blocks)
            self._eskr_bits = sum(x for _, x in window)
        window.append((n, bits))
        self._eskr_bits += bits
        while window[0][0] <= n - window_blocks:
            self._eskr_bits -= window.popleft()[1]
        span = min(window_blocks, n - window[0][0] + 1) * cfg.block_seconds
        eskr = self._eskr_bits / span
        previous = self._state
        if out.down:
            state = LinkState(LinkStatus.PASSIVE, 0.0, 0.0, previous.qber, n, "link down")
            if not self._down:
                self._down = True
                events.append(LinkEvent(LinkEventKind.LINK_DOWN, cfg.qkdl_id, n, state,
                                        "quantum channel lost (no detections)"))
        else:
            skr = out.performance.skr_bps if out.performance is not None else 0.0
            qber = out.qber if out.qber is not None else previous.qber
            aborted = out.status in (BlockStatus.ABORTED_QBER, BlockStatus.ABORTED_VERIFICATION)
            status = LinkStatus.PASSIVE if aborted else LinkStatus.ACTIVE
            reason = out.status.value if aborted and out.status is not None else ""
            if not aborted and skr <= 0:
                status, reason = LinkStatus.PASSIVE, "no secret key at this channel loss"
            state = LinkState(status, skr, eskr, qber, n, reason)
            if self._down:
                self._down = False
                events.append(LinkEvent(LinkEventKind.LINK_UP, cfg.qkdl_id, n, state,
                                        "quantum channel restored"))
            if aborted:
                self.blocks_aborted += 1
                events.append(LinkEvent(LinkEventKind.BLOCK_ABORTED, cfg.qkdl_id, n, state,
                                        f"block {n} aborted ({reason}), QBER {qber:.4f}"))
            if out.qber is not None:
                if not self._alarm and qber > cfg.qber_alarm:
                    self._alarm = True
                    events.append(LinkEvent(LinkEventKind.QBER_ALARM, cfg.qkdl_id, n, state,
                                            f"QBER {qber:.4f} above {cfg.qber_alarm:.4f}: "
                                            "possible eavesdropping"))
                elif self._alarm and qber <= cfg.qber_alarm * 0.8:
                    self._alarm = False
                    events.append(LinkEvent(LinkEventKind.QBER_CLEARED, cfg.qkdl_id, n, state,
                                            f"QBER {qber:.4f} back below {cfg.qber_alarm:.4f}"))
        if self._significant(self._published, state):
            self._published = state
            self._published_block = n
            events.insert(0, LinkEvent(LinkEventKind.PERF_UPDATE, cfg.qkdl_id, n, state))
        with self._lock:
            self._state = state
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("link %s: listener failed on %s", cfg.qkdl_id,
                                  event.kind.value)

    def _significant(self, old: LinkState | None, new: LinkState) -> bool:
        """Publish on a status change at once; otherwise on a real change in skr, eskr or
        QBER, at most once per ``perf_hold_blocks`` blocks."""
        if old is None or old.status is not new.status:
            return True
        cfg = self.config
        if new.block_index - self._published_block < cfg.perf_hold_blocks:
            return False

        def moved(a: float, b: float, ratio: float) -> bool:
            return abs(a - b) > ratio * max(abs(a), abs(b), 1.0)
        # QBER: absolute step, or a quarter of its value (binomial noise on slow links)
        qber_step = max(cfg.qber_change, 0.25 * max(old.qber, new.qber))
        return (moved(old.skr, new.skr, cfg.perf_change_ratio)
                or moved(old.eskr, new.eskr, cfg.eskr_change_ratio)
                or abs(old.qber - new.qber) > qber_step)
