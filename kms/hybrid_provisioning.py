"""Hybrid / post-quantum key provisioning between the two endpoint KMs of a session
(ADR 0009): the I/O shell around :mod:`kms.pqc_handshake` and :mod:`kms.hybrid_kdf`.

The master's KM decides the provenance of each key. For ``hybrid`` it relays one 256-bit QKD
seed per request with the normal relay (OTP + MAC, tagged ``seed``), derives the keys from the
seed and the session's ML-KEM epoch secret, and tells the slave's KM the key IDs directly
(``/relay/v1/pqc/keys``); the slave's KM derives the same bytes. For ``pqc`` there is no seed.
Epoch secrets are kept in memory only and never logged.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kms.errors import (
    AuthenticationFailed,
    InsufficientKey,
    KeyNotFound,
    KmsError,
    NoRoute,
    RelayError,
)
from kms.hybrid_kdf import (
    SEED_BYTES,
    FallbackPolicy,
    Provenance,
    derive_key,
    key_message_tag,
    mode_allowed,
    parse_policy,
)
from kms.key_pool import KeyRecord
from kms.pqc_handshake import (
    Epoch,
    KmCredentials,
    PendingHandshake,
    answer_handshake,
    canonical,
    finish_handshake,
    start_handshake,
)
from kms.relay import RelayUnknown, key_descriptor

if TYPE_CHECKING:
    from kms.key_manager import KeyManager

log = logging.getLogger(__name__)

PQC_HANDSHAKE_PATH = "/relay/v1/pqc/handshake"
PQC_KEYS_PATH = "/relay/v1/pqc/keys"
#: an epoch secret serves at most this many keys or this long, then a new handshake runs
EPOCH_MAX_KEYS = 100_000
EPOCH_MAX_AGE_S = 300.0
#: epochs a responder keeps per session (a key message may still name the previous one)
KEPT_EPOCHS = 4


@dataclass
class _EpochUse:
    epoch: Epoch
    keys: int = 0


class HybridProvisioner:
    """One KM's PQC epochs and hybrid/pqc key production (thread-safe)."""

    def __init__(self, km: KeyManager) -> None:
        self.km = km
        self._creds: KmCredentials | None = None
        self._lock = threading.Lock()
        self._session_locks: dict[str, threading.Lock] = {}
        self._current: dict[str, _EpochUse] = {}            # initiator side, per session
        self._known: dict[tuple[str, str], Epoch] = {}       # both sides, (session, epoch)
        self.handshakes = 0

    # -- helpers ------------------------------------------------------------------------------
    @property
    def creds(self) -> KmCredentials:
        if self._creds is None:
            tls = self.km.tls
            self._creds = KmCredentials.load(tls.cert, tls.key, tls.ca)
        return self._creds

    def policy(self, session_id: str | None) -> FallbackPolicy:
        """The session's configured fallback policy (controller-less sessions: qkd-only)."""
        cfg = self.km._forwarding.sessions.get(session_id or "")
        return parse_policy(cfg.fallback_policy) if cfg is not None else FallbackPolicy.QKD_ONLY

    def _session_lock(self, session_id: str) -> threading.Lock:
        with self._lock:
            return self._session_locks.setdefault(session_id, threading.Lock())

    def drop_session(self, session_id: str) -> None:
        """Forget a terminated session's epochs."""
        with self._lock:
            self._current.pop(session_id, None)
            self._session_locks.pop(session_id, None)
            for key in [k for k in self._known if k[0] == session_id]:
                del self._known[key]

    # -- initiator: epochs --------------------------------------------------------------------
    def ensure_epoch(self, session_id: str, master: str, slave: str, peer_node: str,
                     needed_keys: int) -> Epoch:
        """The session's current epoch, running a new handshake when it is absent or used up."""
        now = self.km._clock()
        with self._session_lock(session_id):
            use = self._current.get(session_id)
            if use is None or use.epoch.peer_node != peer_node or \
                    use.keys + needed_keys > EPOCH_MAX_KEYS or \
                    now - use.epoch.created > EPOCH_MAX_AGE_S:
                use = _EpochUse(self._handshake(session_id, master, slave, peer_node))
                with self._lock:
                    self._current[session_id] = use
                    self._known[(session_id, use.epoch.epoch)] = use.epoch
            use.keys += needed_keys
            return use.epoch

    def _handshake(self, session_id: str, master: str, slave: str, peer_node: str) -> Epoch:
        pending: PendingHandshake = start_handshake(self.creds, session_id, master, slave)
        response = self.km.relay._post(peer_node, PQC_HANDSHAKE_PATH, pending.request)
        if response.status_code != 200:
            raise RelayError(f"PQC handshake refused by {peer_node}: {_message(response)}")
        epoch = finish_handshake(self.creds, pending, response.json(), peer_node,
                                 self.km._clock())
        self.handshakes += 1
        log.info("%s: PQC epoch %s established with %s for session %s", self.km.node_name,
                 epoch.epoch, peer_node, session_id)
        return epoch

    # -- initiator: keys ----------------------------------------------------------------------
    def produce(self, session_id: str, mode: Provenance, records: Sequence[KeyRecord], *,
                next_node: str | None, master_local: bool, slave_local: bool) -> list[KeyRecord]:
        """Turn ``records`` (ids, SAEs, sizes, stream positions; their bytes are ignored) into
        ``mode`` keys stored ready at both ends; returns them with their derived bytes."""
        if not records:
            return []
        mode = Provenance(mode)
        if not mode_allowed(self.policy(session_id), mode) or mode is Provenance.QKD:
            raise InsufficientKey(f"session {session_id} may not receive {mode.value} keys")
        master, slave = records[0].master, records[0].slave
        peer_node = self.km.directory.node_of_sae(slave if master_local else master)
        if peer_node == self.km.node_name:
            raise NoRoute("both SAEs are local: no fallback needed")
        epoch = self.ensure_epoch(session_id, master, slave, peer_node, len(records))
        seed, seed_id = b"", None
        if mode is Provenance.HYBRID:
            seed_id, seed = self._relay_seed(session_id, master, slave, next_node,
                                             master_local, slave_local)
        derived = [KeyRecord(r.key_id, r.master, r.slave,
                             derive_key(seed, epoch.secret, session_id, r.key_id, mode,
                                        len(r.key or b"") * 8),
                             r.stream_id, r.stream_index, session_id, r.expires, mode.value)
                   for r in records]
        body: dict[str, Any] = {"session": session_id, "epoch": epoch.epoch,
                                "provenance": mode.value, "seed_key_ID": seed_id,
                                "keys": [key_descriptor(r) for r in derived]}
        for d in body["keys"]:
            d.pop("provenance", None)     # one provenance per message, in the body
        body["mac"] = base64.b64encode(key_message_tag(epoch.secret, canonical(body))).decode()
        response = self.km.relay._post(peer_node, PQC_KEYS_PATH, body)
        if response.status_code != 200:
            raise RelayError(f"{peer_node} refused {mode.value} keys: {_message(response)}")
        answer = response.json()
        if answer.get("status") != "stored" or \
                list(answer.get("key_IDs", [])) != [r.key_id for r in derived]:
            raise RelayError(f"{peer_node} did not store the {mode.value} keys")
        self.km.pool.store_ready(derived, master_local=master_local, slave_local=slave_local,
                                 now=self.km._clock())
        return derived

    def _relay_seed(self, session_id: str, master: str, slave: str, next_node: str | None,
                    master_local: bool, slave_local: bool) -> tuple[str, bytes]:
        """Relay one QKD seed to the peer with the normal relay; returns (id, bytes) and erases
        this end's copy."""
        if next_node is None:
            raise NoRoute("no QKD path for the QKD part of a hybrid key")
        from kms.key_manager import new_key_ids  # (key_manager imports this module)

        # a version 7 key_ID: its tombstone is pruned behind the pool's watermark like others
        seed = KeyRecord(new_key_ids(1)[0], master, slave, secrets.token_bytes(SEED_BYTES),
                         session=session_id, provenance="seed")
        try:
            self.km.relay.originate(session_id, next_node, [seed], master_local=master_local,
                                    slave_local=slave_local)
        except RelayUnknown:
            self.km._kick_resolver()
            raise
        return seed.key_id, self.km.pool.take_seed(seed.key_id, master, slave)

    # -- responder ----------------------------------------------------------------------------
    def _session_for(self, session_id: Any, master: Any, slave: Any, sender_node: str):
        cfg = self.km._forwarding.sessions.get(str(session_id or ""))
        if cfg is None:
            raise NoRoute("no such session here")
        if not {str(master), str(slave)} <= cfg.sae_ids:
            raise NoRoute("SAEs are not those of the session")
        local = self.km.local_saes()
        other = str(slave) if str(master) in local else str(master)
        if self.km.directory.node_of_sae(other) != sender_node:
            raise NoRoute(f"{sender_node} is not the other end of the session")
        return cfg

    def handle_handshake(self, sender_node: str, body: dict) -> tuple[int, dict]:
        try:
            cfg = self._session_for(body.get("session"), body.get("master_SAE_ID"),
                                    body.get("slave_SAE_ID"), sender_node)
            if parse_policy(cfg.fallback_policy) is FallbackPolicy.QKD_ONLY:
                return 403, {"status": "rejected", "message": "session policy is qkd-only"}
            answer, epoch = answer_handshake(self.creds, body, sender_node, self.km._clock())
        except AuthenticationFailed as exc:
            log.warning("%s: PQC handshake from %s rejected: %s", self.km.node_name,
                        sender_node, exc)
            return 403, {"status": "rejected", "message": "handshake not authentic"}
        except KmsError as exc:
            return 403, {"status": "rejected", "message": str(exc)}
        with self._lock:
            self._known[(epoch.session, epoch.epoch)] = epoch
            mine = sorted((e.created, k) for k, e in self._known.items() if k[0] == epoch.session)
            for _, key in mine[:-KEPT_EPOCHS]:     # key messages use the newest epochs
                del self._known[key]
        log.info("%s: PQC epoch %s established with %s for session %s", self.km.node_name,
                 epoch.epoch, sender_node, epoch.session)
        return 200, answer

    def handle_keys(self, sender_node: str, body: dict) -> tuple[int, dict]:
        try:
            session_id, keys = str(body["session"]), body["keys"]
            provenance = Provenance(body["provenance"])
            tag = base64.b64decode(body["mac"], validate=True)
            if not isinstance(keys, list) or not keys:
                raise ValueError("keys")
        except (KeyError, TypeError, ValueError):
            return 400, {"status": "rejected", "message": "malformed key message"}
        with self._lock:
            epoch = self._known.get((session_id, str(body.get("epoch"))))
        if epoch is None or epoch.peer_node != sender_node:
            return 409, {"status": "rejected", "message": "unknown PQC epoch"}
        unsigned = {k: v for k, v in body.items() if k != "mac"}
        if not hmac.compare_digest(key_message_tag(epoch.secret, canonical(unsigned)), tag):
            log.warning("%s: PQC key message from %s rejected: MAC mismatch", self.km.node_name,
                        sender_node)
            return 403, {"status": "rejected", "message": "message not authentic"}
        try:
            master, slave = str(keys[0]["master_SAE_ID"]), str(keys[0]["slave_SAE_ID"])
            self._session_for(session_id, master, slave, sender_node)
            if provenance is Provenance.QKD or not mode_allowed(self.policy(session_id), provenance):
                return 403, {"status": "rejected",
                             "message": f"session policy does not allow {provenance.value} keys"}
            if any(str(k["master_SAE_ID"]) != master or str(k["slave_SAE_ID"]) != slave
                   for k in keys):
                raise NoRoute("one message serves one SAE pair")
            seed = b""
            if provenance is Provenance.HYBRID:
                seed = self.km.pool.take_seed(str(body.get("seed_key_ID")), master, slave)
            records = [KeyRecord(
                str(k["key_ID"]), master, slave,
                derive_key(seed, epoch.secret, session_id, str(k["key_ID"]), provenance,
                           int(k["size"])),
                k.get("Key_stream_ID"), k.get("index"), session_id, k.get("expires"),
                provenance.value) for k in keys]
        except KeyNotFound as exc:
            return 409, {"status": "rejected", "message": str(exc)}
        except (KmsError, KeyError, TypeError, ValueError) as exc:
            return 403, {"status": "rejected", "message": f"key message refused: {exc}"}
        local = self.km.local_saes()
        try:
            self.km.pool.store_ready(records, master_local=master in local,
                                     slave_local=slave in local, now=self.km._clock())
        except RelayError:
            return 409, {"status": "rejected", "message": "key_ID already known"}
        return 200, {"status": "stored", "key_IDs": [r.key_id for r in records]}


def _message(response: Any) -> str:
    try:
        return str(response.json().get("message", response.status_code))
    except ValueError:
        return f"HTTP {response.status_code}"
