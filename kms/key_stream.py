"""ETSI GS QKD 004 key streams at one KM: OPEN_CONNECT / GET_KEY / CLOSE semantics.

One Key_stream_ID (KSID) is shared by both peers; the KM where the stream was opened first is
its *originator* and is the only one that creates keys, so index ``i`` is the same key on both
sides. The other KM asks the originator (``pull`` control message, sent to it directly: control
messages carry no key material and skip the relays) to relay keys up to an index. Keys live in the :class:`~kms.key_pool.KeyPool` with
their stream position and are deleted ``ttl`` seconds after creation if unused.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from kms import notifications
from kms.errors import InsufficientKey, KmsError, NoRoute, RelayError, SessionRefused
from kms.hybrid_kdf import fallback_mode
from kms.key_pool import KeyRecord, KeyState
from kms.refusals import Refusal
from kms.session import KmSession, SessionEvent, SessionState
from kms.session_admission import ConcurrencyLimited, SessionAdmission

if TYPE_CHECKING:
    from kms.key_manager import KeyManager, Route

log = logging.getLogger(__name__)

PULL_BATCH = 16
MAX_CHUNK_BYTES = 1024
#: longest a GET_KEY / OPEN_CONNECT may wait (QoS timeout, ms): bounds a worker thread's wait
MAX_TIMEOUT_MS = 60_000


#: streams ended by their session whose SAEs' CLOSE is still answered 0 (the newest kept)
ENDED_STREAMS_KEPT = 4096


class Status(IntEnum):
    """ETSI 004 status codes, exactly."""

    SUCCESS = 0
    PEER_NOT_CONNECTED_YET = 1     # successful connection, but peer not connected
    INSUFFICIENT_KEY = 2           # GET_KEY failed: insufficient key available
    PEER_NOT_CONNECTED = 3         # GET_KEY failed: peer application not connected
    NO_QKD_CONNECTION = 4          # no QKD connection available
    KSID_IN_USE = 5                # OPEN_CONNECT failed: KSID already in use
    TIMEOUT = 6                    # TIMEOUT_ERROR
    QOS_NOT_MET = 7                # OPEN failed: requested QoS not met (counter-proposal)
    METADATA_TOO_SMALL = 8         # GET_KEY failed: metadata buffer too small


@dataclass(frozen=True)
class QoS:
    """004 QoS; key_chunk_size in bytes, bit rates in bit/s, jitter and timeout in ms, ttl in s."""

    key_chunk_size: int = 32
    max_bps: int = 0
    min_bps: int = 0
    jitter: int = 0
    priority: int = 0
    timeout: int = 0
    ttl: int = 0
    metadata_mimetype: str = "application/json"


@dataclass(frozen=True)
class Reply:
    status: Status
    ksid: str | None = None
    qos: QoS | None = None
    key: bytes | None = None
    index: int | None = None
    metadata: bytes | None = None
    provenance: str | None = None   #: qkd, hybrid or pqc (ADR 0009)
    #: refused for the session's rate or concurrency: seconds before asking again is useful
    #: (the HTTP binding holds the caller's connection that long; not on the wire)
    retry_after: float | None = None


@dataclass
class KeyStream:
    ksid: str
    local_saes: set[str]
    saes: tuple[str, str]            # (originating SAE, peer SAE)
    qos: QoS
    originator: bool
    route: Route
    session: KmSession
    open_saes: set[str] = field(default_factory=set)
    peer_open: bool = False          # the remote SAE has opened (remote streams only)
    next_index: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: crossing OPEN_CONNECTs: KSIDs of the peer's streams that gave way to this one
    absorbed: set[str] = field(default_factory=set)
    #: crossing OPEN_CONNECTs: the KSID this (dropped) stream gave way to
    superseded_by: str | None = None
    #: local SAEs counted open on behalf of their OPEN_CONNECT still waiting for the
    #: session's configuration when the peer's open arrived (it takes the claim, or
    #: releases it if it fails)
    claimed: set[str] = field(default_factory=set)

    def connected(self) -> bool:
        if len(self.local_saes) == 2:
            return self.open_saes == self.local_saes
        return bool(self.open_saes) and self.peer_open


class StreamManager:
    """004 streams of one KM; the HTTP binding is :mod:`kms.etsi004`."""

    def __init__(self, km: KeyManager) -> None:
        self.km = km
        self._streams: dict[str, KeyStream] = {}
        self._lock = threading.RLock()
        #: why the last keys of a stream were not QKD keys (for the mode-change notification)
        self._fallback_reasons: dict[str, str] = {}
        #: GET_KEYs of one session in progress at once: waiting in the token bucket or for
        #: key material holds a worker thread, so one session may hold only a few of them
        self.admission = SessionAdmission()
        #: streams ended by their session (KSID -> local SAEs still open then), oldest first:
        #: a later CLOSE of such a stream succeeds once
        self._ended: dict[str, set[str]] = {}
        #: local OPEN_CONNECTs waiting for their session's configuration, by (SAE, peer SAE)
        self._pending_opens: dict[tuple[str, str], int] = {}
        km.streams = self

    # -- QoS ----------------------------------------------------------------------------------
    def negotiate(self, qos: QoS, session_cfg) -> QoS | None:
        """None if acceptable, else the counter-proposal."""
        counter = qos
        if not 1 <= qos.key_chunk_size <= MAX_CHUNK_BYTES:
            counter = replace(counter, key_chunk_size=min(max(qos.key_chunk_size, 1), MAX_CHUNK_BYTES))
        if session_cfg is not None and session_cfg.max_bandwidth:
            cap = session_cfg.max_bandwidth
            if qos.min_bps > cap or qos.max_bps > cap:
                counter = replace(counter, min_bps=min(qos.min_bps, cap), max_bps=min(qos.max_bps or cap, cap))
        return None if counter == qos else counter

    # -- OPEN_CONNECT -------------------------------------------------------------------------
    def open_connect(self, caller: str, source: str, destination: str, qos: QoS,
                     ksid: str | None) -> Reply:
        if caller != source:
            raise PermissionError("source must be the calling SAE")
        km = self.km
        try:
            peer_node = km.directory.node_of_sae(destination)
        except KmsError:
            return Reply(Status.NO_QKD_CONNECTION)
        counter = self.negotiate(qos, km._forwarding.session_for_pair(source, destination))
        if counter is not None:
            return Reply(Status.QOS_NOT_MET, ksid, counter)
        ksid = ksid.lower() if ksid else None
        with self._lock:
            if ksid and ksid not in self._streams and km.used_by_014(ksid):
                # the ID of a session ETSI 014 uses is not a key stream to open or join
                return Reply(Status.KSID_IN_USE, ksid)
            stream = self._streams.get(ksid) if ksid else self._half_open_for(caller, destination)
            if stream is not None:
                if caller not in stream.local_saes or caller in stream.open_saes or \
                        set(stream.saes) != {source, destination}:
                    return Reply(Status.KSID_IN_USE, stream.ksid)
                stream.open_saes.add(caller)
                joined = stream
            else:
                joined = None
        if joined is not None:
            km.telemetry.request(joined.session.session_id, "004", "open_connect", caller)
            if len(joined.local_saes) == 1:
                try:
                    self._control(joined, {"op": "connected", "Key_stream_ID": joined.ksid})
                except (KmsError, RelayError):
                    return Reply(Status.NO_QKD_CONNECTION, joined.ksid)
            self._notify_new(caller, destination, qos)
            return Reply(Status.SUCCESS, joined.ksid, joined.qos)
        # a new stream, originated here
        ksid = (ksid or str(uuid.uuid4())).lower()
        session = km.session_for_pair(source, destination, qos=notifications.qos_to_app_qos(
            qos.max_bps, qos.min_bps, qos.jitter, qos.ttl), priority=qos.priority,
            interface=notifications.ApplicationInterface.ETSI_004, key_stream_id=ksid,
            etsi004_qos=_etsi004_extra(qos))
        km.telemetry.request(session.session_id, "004", "open_connect", caller)
        pair = (caller, destination)
        with self._lock:
            self._pending_opens[pair] = self._pending_opens.get(pair, 0) + 1
        taken = False
        try:
            if not self._wait_active(session, qos.timeout):
                refusal = km.refusal_for(session)
                if refusal is not None:  # the controller's answer (docs/adr/0010)
                    return _refusal_reply(refusal, qos)
                return Reply(Status.TIMEOUT, None)
            try:
                route = km.route_for(source, destination, session)
            except KmsError:
                return Reply(Status.NO_QKD_CONNECTION)
            if session.session_id in km._forwarding.sessions:
                ksid = session.session_id  # with a controller, the KSID is the session ID
            local = {s for s in (source, destination) if km.directory.saes.get(s) == km.node_name}
            stream = KeyStream(ksid, local, (source, destination), qos, True, route, session,
                               open_saes={caller})
            with self._lock:
                existing = self._streams.get(ksid)
                if existing is None:
                    self._streams[ksid] = stream
                elif caller in existing.claimed:
                    existing.claimed.discard(caller)
                    taken = True
                elif _joinable(existing, caller, source, destination):
                    existing.open_saes.add(caller)
                else:
                    return Reply(Status.KSID_IN_USE, ksid)
        finally:
            self._open_finished(pair, taken)
        if existing is not None:
            return self._join_peer_stream(existing, caller, announce=not taken)
        if peer_node != km.node_name:
            try:
                answer = self._control(stream, {"op": "open", "Key_stream_ID": ksid,
                                                "source": source, "destination": destination,
                                                "qos": qos_to_wire(qos)})
            except (KmsError, RelayError):
                with self._lock:
                    self._streams.pop(ksid, None)
                return Reply(Status.NO_QKD_CONNECTION)
            if answer.get("status") == "superseded":   # crossing opens: the peer's stream won
                return self._join_winner(stream, answer)
            with self._lock:
                if stream.superseded_by:   # the peer's crossing open reached us meanwhile
                    winner = self._streams.get(stream.superseded_by)
                    if winner is not None:
                        return Reply(Status.SUCCESS, winner.ksid, winner.qos)
                if answer.get("absorbed"):
                    stream.absorbed.add(str(answer["absorbed"]).lower())
                # a crossing open that lost may have set it already
                stream.peer_open = stream.peer_open or bool(answer.get("peer_open"))
        log.info("%s: 004 stream %s opened by %s", km.node_name, ksid, caller)
        status = Status.SUCCESS if stream.connected() else Status.PEER_NOT_CONNECTED_YET
        return Reply(status, ksid, qos)

    def _join_peer_stream(self, stream: KeyStream, caller: str, *, announce: bool) -> Reply:
        """A waiting OPEN_CONNECT whose session became active after the peer's KM opened the
        stream here (with a controller both ends get the same KSID, the session ID): the SAE
        joins that stream. Unless it was already counted open (``announce`` False: claimed
        for it when the open arrived), the peer's KM is told it is connected now."""
        if announce and len(stream.local_saes) == 1:
            try:
                self._control(stream, {"op": "connected", "Key_stream_ID": stream.ksid})
            except (KmsError, RelayError):
                with self._lock:
                    stream.open_saes.discard(caller)
                return Reply(Status.NO_QKD_CONNECTION, stream.ksid)
        log.info("%s: 004 stream %s joined by %s", self.km.node_name, stream.ksid, caller)
        status = Status.SUCCESS if stream.connected() else Status.PEER_NOT_CONNECTED_YET
        return Reply(status, stream.ksid, stream.qos)

    def _open_finished(self, pair: tuple[str, str], taken: bool) -> None:
        """One waiting OPEN_CONNECT of ``pair`` is done. When none is left and it did not take
        the claim made for it, the claim is released and the peer's KM told the SAE is not
        open after all (its OPEN_CONNECT failed: timeout, refusal, no route)."""
        caller, peer = pair
        with self._lock:
            left = self._pending_opens.get(pair, 0) - 1
            if left > 0:
                self._pending_opens[pair] = left
                return
            self._pending_opens.pop(pair, None)
            if taken:
                return
            released = [s for s in self._streams.values()
                        if caller in s.claimed and set(s.saes) == {caller, peer}]
            for stream in released:
                stream.claimed.discard(caller)
                stream.open_saes.discard(caller)
        for stream in released:
            try:
                self._control(stream, {"op": "close", "Key_stream_ID": stream.ksid})
            except (KmsError, RelayError):
                log.info("%s: 004 stream %s: the peer KM was not told %s did not open",
                         self.km.node_name, stream.ksid, caller)

    def _join_winner(self, mine: KeyStream, answer: dict[str, Any]) -> Reply:
        """Crossing OPEN_CONNECTs (both SAEs of a pair opened a new stream at the same time):
        the peer's stream won (:func:`crossing_winner`); this KM's stream is dropped and its
        SAE joins the winner's KSID, which it receives in this reply."""
        ksid = str(answer.get("Key_stream_ID", "")).lower()
        qos = qos_from_wire(answer.get("qos") or {}) if answer.get("qos") else mine.qos
        local_sae = mine.saes[0]
        with self._lock:
            if self._streams.get(mine.ksid) is mine:
                self._streams.pop(mine.ksid, None)
            joined = self._streams.get(ksid)
            if joined is None or joined.originator:
                joined = KeyStream(ksid, {local_sae}, (mine.saes[1], local_sae), qos, False,
                                   mine.route, mine.session, peer_open=True)
                self._streams[ksid] = joined
            joined.open_saes.add(local_sae)
        log.info("%s: 004 crossing OPEN_CONNECT of %s joins stream %s", self.km.node_name,
                 local_sae, ksid)
        return Reply(Status.SUCCESS, ksid, joined.qos)

    def _notify_new(self, caller: str, peer: str, qos: QoS) -> None:
        self.km.session_for_pair(caller, peer, qos=notifications.qos_to_app_qos(
            qos.max_bps, qos.min_bps, qos.jitter, qos.ttl), priority=qos.priority,
            interface=notifications.ApplicationInterface.ETSI_004, etsi004_qos=_etsi004_extra(qos))

    def _half_open_for(self, caller: str, peer: str) -> KeyStream | None:
        for stream in self._streams.values():
            if caller in stream.local_saes and caller not in stream.open_saes and \
                    set(stream.saes) == {caller, peer}:
                return stream
        return None

    def _crossing_stream(self, source: str, destination: str, ksid: str) -> KeyStream | None:
        """This KM's own new stream from ``destination`` (local) to ``source`` that crosses
        the peer's open of ``ksid``: one the peer has not opened yet, or one the peer's stream
        ``ksid`` already gave way to (its open arrives late). Caller holds the lock."""
        for stream in self._streams.values():
            if stream.originator and stream.saes == (destination, source) and \
                    len(stream.local_saes) == 1 and \
                    (ksid in stream.absorbed or not stream.peer_open):
                return stream
        return None

    def _wait_active(self, session: KmSession, timeout_ms: int) -> bool:
        """Wait (up to ``timeout_ms``) for the session's configuration; whether it is active.
        Woken by each configuration the KM applies (no polling interval added to a set-up)."""
        try:
            self.km.await_configuration(session, timeout_ms / 1000)
        except SessionRefused:
            return False
        return session.active

    # -- GET_KEY ------------------------------------------------------------------------------
    def get_key(self, caller: str, ksid: str, index: int | None, metadata_size: int | None) -> Reply:
        with self._lock:
            stream = self._streams.get(str(ksid).lower())
        if stream is None or caller not in stream.open_saes:
            return Reply(Status.NO_QKD_CONNECTION, ksid)   # not yours == does not exist
        if not stream.connected():
            return Reply(Status.PEER_NOT_CONNECTED, ksid)
        self.km.telemetry.request(stream.session.session_id, "004", "get_key", caller)
        try:
            with self.admission.admit(stream.session.session_id):
                return self._get_key_admitted(stream, caller, ksid, index, metadata_size)
        except ConcurrencyLimited as exc:   # before any index, key or bucket work
            self._report(stream, notifications.KeyRequestOutcome.RATE_LIMITED)
            return Reply(Status.TIMEOUT, ksid, index=index, retry_after=exc.retry_after)

    def _get_key_admitted(self, stream: KeyStream, caller: str, ksid: str, index: int | None,
                          metadata_size: int | None) -> Reply:
        with stream.lock:
            if index is None:
                index = stream.next_index.get(caller, 0)
            if index < 0:
                return Reply(Status.INSUFFICIENT_KEY, ksid)
            metadata = self._metadata(stream, index, "hybrid")   # the longest provenance
            if metadata_size is not None and metadata_size < len(metadata):
                return Reply(Status.METADATA_TOO_SMALL, ksid, index=index, metadata=None)
            stream.next_index[caller] = max(stream.next_index.get(caller, 0), index + 1)
        deadline = time.monotonic() + stream.qos.timeout / 1000
        session = stream.session
        if not self.km.wait_for_tokens(session.session_id, stream.qos.key_chunk_size * 8,
                                       stream.qos.max_bps or None, deadline):
            self._report(stream, notifications.KeyRequestOutcome.RATE_LIMITED)
            with stream.lock:   # the index was not served: hand it out again next time
                if stream.next_index.get(caller) == index + 1:
                    stream.next_index[caller] = index
            return Reply(Status.TIMEOUT, ksid, index=index,
                         retry_after=self.km.token_retry_after(
                             session.session_id, stream.qos.key_chunk_size * 8))
        with self.km._lock:
            if session.active:
                session.fire(SessionEvent.KEY_REQUEST)
        obtained = False
        try:
            while True:
                try:
                    record = self.km.pool.take_stream_key(stream.ksid, index, caller, self.km._clock())
                except KmsError:
                    return Reply(Status.INSUFFICIENT_KEY, ksid, index=index)  # already delivered
                if record is not None:
                    self.km.record_delivery(session.session_id, [record],
                                            decides_mode=stream.originator,
                                            reason=self._fallback_reasons.get(stream.ksid, ""))
                    self._report(stream, notifications.KeyRequestOutcome.DELIVERED, [record])
                    self.km.telemetry.key_returned(stream.session.session_id, "004", "get_key",
                                                   caller, 1, len(record.key or b"") * 8)
                    return Reply(Status.SUCCESS, ksid, key=record.key, index=index,
                                 metadata=self._metadata(stream, index, record.provenance),
                                 provenance=record.provenance)
                state = self.km.pool.stream_state(stream.ksid, index)
                if state is not None and state is not KeyState.PENDING:
                    return Reply(Status.INSUFFICIENT_KEY, ksid, index=index)  # released/expired
                reason: Exception = InsufficientKey("key not yet relayed")
                if state is None and not obtained:
                    try:
                        self._obtain(stream, index)
                        obtained = True
                        continue
                    except (InsufficientKey, RelayError, NoRoute) as exc:
                        reason = exc
                if time.monotonic() >= deadline:
                    log.info("%s: 004 GET_KEY %s[%d]: %s", self.km.node_name, ksid, index,
                             type(reason).__name__)
                    self._report(stream, notifications.KeyRequestOutcome.TIMEOUT if stream.qos.timeout
                                 else notifications.KeyRequestOutcome.INSUFFICIENT_KEY)
                    return Reply(Status.TIMEOUT if stream.qos.timeout else Status.INSUFFICIENT_KEY,
                                 ksid, index=index)
                obtained = False
                self.km.wait_for_key_material(min(0.2, max(0.0, deadline - time.monotonic())))
        finally:
            with self.km._lock:
                if session.state is SessionState.KEY_EXCHANGING:
                    session.fire(SessionEvent.KEY_DELIVERED)

    def _report(self, stream: KeyStream, outcome: notifications.KeyRequestOutcome,
                delivered: list[KeyRecord] | None = None) -> None:
        self.km.report_key_request(stream.session.session_id, 1, stream.qos.key_chunk_size * 8,
                                   outcome, delivered)

    def _metadata(self, stream: KeyStream, index: int, provenance: str = "qkd") -> bytes:
        """Metadata of a key: stream, index, size and ``key_provenance`` (ADR 0009)."""
        return (f'{{"Key_stream_ID":"{stream.ksid}","index":{index},'
                f'"key_chunk_size":{stream.qos.key_chunk_size},'
                f'"key_provenance":"{provenance}"}}').encode()

    def _obtain(self, stream: KeyStream, index: int) -> None:
        if stream.originator:
            self.produce(stream, index)
        else:
            answer = self._control(stream, {"op": "pull", "Key_stream_ID": stream.ksid, "index": index})
            if answer.get("status") != "ok":
                raise InsufficientKey(str(answer.get("message", "originator has no key")))

    def produce(self, stream: KeyStream, up_to: int) -> None:
        """Originator: create and relay every missing key up to ``up_to`` (plus a batch ahead)."""
        km = self.km
        with stream.lock:
            first = km.pool.max_stream_index(stream.ksid) + 1
            if first > up_to:
                return
            last = max(up_to, first + PULL_BATCH - 1)
            now = km._clock()
            expires = now + stream.qos.ttl if stream.qos.ttl else None
            master, slave = stream.saes
            records = [KeyRecord(str(uuid.uuid5(uuid.UUID(stream.ksid), str(i))), master, slave,
                                 secrets.token_bytes(stream.qos.key_chunk_size), stream.ksid, i,
                                 stream.route.session, expires) for i in range(first, last + 1)]
            if stream.route.next_node is None:
                km.pool.store_ready(records, master_local=True, slave_local=True, now=now)
                return
            session_id = stream.route.session or ""
            mode = fallback_mode(km.hybrid.policy(session_id))
            nbytes = len(records) * stream.qos.key_chunk_size
            reason = km.qkd_shortage(stream.route.next_node, nbytes * 8) if mode else None
            if not reason:
                try:
                    route = km.pick_leg(stream.route, nbytes)
                    with km.gate.slot(stream.qos.priority, stream.session.session_id):
                        km.note_leg_use(route, nbytes * 8)
                        km.relay.originate(route.session, route.next_node, records,
                                           master_local=master in stream.local_saes,
                                           slave_local=slave in stream.local_saes, leg=route.leg)
                    self._fallback_reasons.pop(stream.ksid, None)
                    return
                except (InsufficientKey, RelayError, NoRoute) as exc:
                    if mode is None:
                        raise
                    reason = "insufficient key" if isinstance(exc, InsufficientKey) else \
                        "relay failed"
            assert mode is not None
            self._fallback_reasons[stream.ksid] = reason
            km.hybrid.produce(session_id, mode, records, next_node=stream.route.next_node,
                              master_local=master in stream.local_saes,
                              slave_local=slave in stream.local_saes)

    # -- CLOSE --------------------------------------------------------------------------------
    def close(self, caller: str, ksid: str) -> Reply:
        with self._lock:
            stream = self._streams.get(str(ksid).lower())
            if stream is None:
                # the session ended first (the peer's CLOSE, expiry, the controller): the
                # stream this SAE had open is closed, as asked, once
                ended = self._ended.get(str(ksid).lower())
                if ended is not None and caller in ended:
                    ended.discard(caller)
                    return Reply(Status.SUCCESS, ksid)
                return Reply(Status.NO_QKD_CONNECTION, ksid)
            if caller not in stream.open_saes:
                return Reply(Status.NO_QKD_CONNECTION, ksid)
            stream.open_saes.discard(caller)
            finished = not stream.open_saes
            if finished:
                self._streams.pop(stream.ksid, None)
        if finished:
            self.km.pool.drop_stream(stream.ksid)
            with self.km._lock:   # a session ETSI 014 also uses stays for 014
                if stream.session.state is not SessionState.TERMINATED and \
                        not self.km.used_by_014(stream.session.session_id):
                    stream.session.fire(SessionEvent.CLOSED)
            if len(stream.local_saes) == 1:
                try:
                    self._control(stream, {"op": "close", "Key_stream_ID": stream.ksid})
                except (KmsError, RelayError):
                    log.info("%s: peer KM not told of close of %s", self.km.node_name, stream.ksid)
        return Reply(Status.SUCCESS, stream.ksid)

    def on_session_terminated(self, session_id: str) -> None:
        self.on_sessions_terminated([session_id])

    def on_sessions_terminated(self, session_ids: Iterable[str]) -> None:
        """Drop the streams of ended sessions and their unreleased keys: one pass over the
        streams and one key-pool transaction for all of them (a whole tick's expiries)."""
        ended = set(session_ids)
        with self._lock:
            gone = [s for s in self._streams.values() if s.session.session_id in ended]
            for stream in gone:
                self._streams.pop(stream.ksid, None)
                if stream.open_saes:
                    self._ended[stream.ksid] = set(stream.open_saes)
            while len(self._ended) > ENDED_STREAMS_KEPT:
                self._ended.pop(next(iter(self._ended)))
        if gone:
            self.km.pool.drop_streams([stream.ksid for stream in gone])

    # -- KM-to-KM control ---------------------------------------------------------------------
    def _control(self, stream: KeyStream, body: dict) -> dict:
        """Send a control message to the KM of the stream's other SAE, directly (not hop by
        hop: it carries no key material)."""
        peer_node = self._peer_node(stream)
        if peer_node is None:
            raise NoRoute("both SAEs of this stream are local")
        return self.km.relay.send_control(stream.route.session, peer_node, body,
                                          leg=stream.route.leg)

    def _peer_node(self, stream: KeyStream) -> str | None:
        """The node of the stream's SAE that is not local; None when both are (two local
        SAEs, or an SAE that opened a stream to itself)."""
        remote = [sae for sae in stream.saes if sae not in stream.local_saes]
        return self.km.directory.node_of_sae(remote[0]) if remote else None

    def handle_control(self, sender_node: str | None, body: dict[str, Any]) -> dict:
        """A control message that reached this KM as the stream's other endpoint."""
        op, ksid = body.get("op"), str(body.get("Key_stream_ID", "")).lower()
        km = self.km
        if op == "open":
            source, destination = body.get("source"), body.get("destination")
            if not isinstance(source, str) or not isinstance(destination, str):
                return {"status": "error", "message": "open needs source and destination SAE_IDs"}
            if km.directory.saes.get(destination) != km.node_name:
                return {"status": "error", "message": "destination SAE not here"}
            if sender_node is not None and km.directory.saes.get(source) != sender_node:
                return {"status": "error", "message": "an open comes from its source SAE's KM"}
            try:
                qos = qos_from_wire(body.get("qos", {}))
            except ValueError as exc:
                return {"status": "error", "message": str(exc)}
            with self._lock:
                mine = self._crossing_stream(source, destination, ksid)
                if mine is not None:
                    if ksid in mine.absorbed or \
                            crossing_winner(mine.saes[0], source) == mine.saes[0]:
                        # ours wins: the sender's SAE joins it (the sender drops its stream)
                        mine.peer_open = True
                        mine.absorbed.add(ksid)
                        return {"status": "superseded", "Key_stream_ID": mine.ksid,
                                "qos": qos_to_wire(mine.qos)}
                    # the sender's wins: ours is dropped, our SAE is in the sender's stream
                    self._streams.pop(mine.ksid, None)
                    mine.superseded_by = ksid
                    self._streams[ksid] = KeyStream(
                        ksid, {destination}, (source, destination), qos, False, mine.route,
                        mine.session, open_saes={destination}, peer_open=True)
                    log.info("%s: 004 crossing OPEN_CONNECT: stream %s of %s gives way to %s",
                             km.node_name, mine.ksid, destination, ksid)
                    return {"status": "ok", "peer_open": True, "absorbed": mine.ksid}
                existing = self._streams.get(ksid)
                if existing is not None:
                    existing.peer_open = True
                    return {"status": "ok", "peer_open": bool(existing.open_saes)}
            # Not under the streams' lock: session_for_pair takes the KM's lock, and the KM's
            # housekeeping takes the streams' lock under its own (on_session_terminated when
            # a session expires). Both orders at once deadlocked the whole KM.
            session = km.session_for_pair(destination, source)
            route = _reverse_route(km, body.get("session"), sender_node, body.get("leg"))
            with self._lock:
                existing = self._streams.get(ksid)
                if existing is not None:   # a concurrent "open" of the same stream got here first
                    existing.peer_open = True
                    return {"status": "ok", "peer_open": bool(existing.open_saes)}
                # the local SAE's own OPEN_CONNECT may be waiting for this session's
                # configuration (both SAEs opened at once; this end is configured a little
                # later): it is counted open now and joins this stream when it wakes
                waiting = {destination} if self._pending_opens.get((destination, source)) and \
                    (session.session_id == ksid or session.state in _AWAITING_CONFIGURATION) \
                    else set()
                self._streams[ksid] = KeyStream(ksid, {destination}, (source, destination), qos,
                                                False, route, session, open_saes=set(waiting),
                                                peer_open=True, claimed=set(waiting))
            return {"status": "ok", "peer_open": bool(waiting)}
        with self._lock:
            stream = self._streams.get(ksid)
        if stream is None:
            return {"status": "error", "message": "unknown Key_stream_ID"}
        if sender_node is not None and self._peer_node(stream) != sender_node:
            return {"status": "error", "message": "not the KM of this stream's other SAE"}
        if op == "connected":
            stream.peer_open = True
            return {"status": "ok"}
        if op == "close":
            stream.peer_open = False
            return {"status": "ok"}
        if op == "pull" and stream.originator:
            index = body.get("index")
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                return {"status": "error", "message": "pull needs a key index (integer >= 0)"}
            try:
                self.produce(stream, index)
            except (KmsError, RelayError) as exc:
                return {"status": "error", "message": type(exc).__name__}
            return {"status": "ok"}
        return {"status": "error", "message": f"unsupported op {op!r}"}


#: a session the controller has not configured yet (its ID becomes the stream's KSID then)
_AWAITING_CONFIGURATION = (SessionState.AUTHENTICATING, SessionState.USER_ACCEPTED)


def _joinable(stream: KeyStream, caller: str, source: str, destination: str) -> bool:
    """Whether ``caller``'s OPEN_CONNECT of (``source``, ``destination``) may join ``stream``,
    a stream the peer's KM opened here: the caller is its local SAE, not open yet, and the
    stream is of the same pair."""
    return (not stream.originator and caller in stream.local_saes
            and caller not in stream.open_saes and set(stream.saes) == {source, destination})


def crossing_winner(sae_a: str, sae_b: str) -> str:
    """Of two crossing OPEN_CONNECTs with a null KSID (each SAE of a pair opened a new stream
    before hearing of the other's), the stream opened by this SAE is kept: the smaller
    SAE_ID, so that both KMs decide alike without a further message.

    >>> crossing_winner("sae-b", "sae-a")
    'sae-a'
    """
    return min(sae_a, sae_b)


def _refusal_reply(refusal: Refusal, qos: QoS) -> Reply:
    """OPEN_CONNECT's answer to a refused session: the refusal's status; with status 7 the
    counter-proposal (the requested QoS with the fields the controller changed)."""
    status = Status(refusal.etsi004_status)
    proposal = refusal.counter_proposal
    if status is not Status.QOS_NOT_MET or proposal is None:
        return Reply(status, None)
    changes = {name: value for name, value in (
        ("max_bps", proposal.max_bps), ("min_bps", proposal.min_bps),
        ("priority", proposal.priority), ("key_chunk_size", proposal.key_chunk_size))
        if value is not None}
    return Reply(status, None, replace(qos, **changes))


def _etsi004_extra(qos: QoS) -> dict[str, Any]:
    """The 004 QoS fields 015's app_qos cannot carry (km_request/etsi004_qos)."""
    return {"key_chunk_size": qos.key_chunk_size, "timeout": qos.timeout,
            "metadata_mimetype": qos.metadata_mimetype}


def _reverse_route(km: KeyManager, session: str | None, sender_node: str | None,
                   leg: str | None = None) -> Route:
    """The route of a stream opened by the KM ``sender_node`` (the stream's other end; the
    neighbour for an adjacent pair). Such a stream never originates keys: its route serves
    only its session and leg."""
    from kms.key_manager import Route
    return Route(session, sender_node, leg=leg)


def qos_to_wire(qos: QoS) -> dict[str, Any]:
    return {"key_chunk_size": qos.key_chunk_size, "max_bps": qos.max_bps, "min_bps": qos.min_bps,
            "jitter": qos.jitter, "priority": qos.priority, "timeout": qos.timeout, "ttl": qos.ttl,
            "metadata_mimetype": qos.metadata_mimetype}


def qos_from_wire(body: dict[str, Any]) -> QoS:
    """Parse 004 QoS JSON; ValueError on a wrong type or a value out of range
    (kms/openapi/etsi004.json)."""
    if not isinstance(body, dict):   # e.g. "QoS": true (found by the long REST fuzz: was a 500)
        raise ValueError("QoS must be a JSON object")  # noqa: TRY004 - answered as 400
    defaults = QoS()
    values: dict[str, Any] = {}
    for name in ("key_chunk_size", "max_bps", "min_bps", "jitter", "priority", "timeout", "ttl"):
        raw = body.get(name, getattr(defaults, name))
        limit = MAX_TIMEOUT_MS if name == "timeout" else 2**32 - 1
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= limit:
            raise ValueError(f"QoS {name} must be an integer in 0..{limit}")
        values[name] = raw
    mimetype = body.get("metadata_mimetype", defaults.metadata_mimetype)
    if not isinstance(mimetype, str) or len(mimetype) > 256:
        raise ValueError("QoS metadata_mimetype must be a string of at most 256 characters")
    return QoS(metadata_mimetype=mimetype, **values)
