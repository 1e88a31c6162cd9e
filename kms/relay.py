"""Trusted-node key relay between KMs (paper Fig. 3b), over HTTPS with mutual TLS.

Message shapes follow ETSI GS QKD 020 (``ext_keys``, ``ack``) loosely; see ``docs/kms.md``.

* The source KM records the new end-to-end keys as *pending*, takes ``|K| + 64`` bytes of its
  sending half of the link to the next hop (pad, request MAC key, ack MAC key), sends
  ``K ⊕ L`` with a Wegman–Carter tag, and names the link bytes with a key reference.
* Each relay takes exactly those bytes of its receiving half (a replay finds them gone),
  checks the tag, decrypts, and re-encrypts with fresh bytes of its next link.
* The destination stores the keys (all or none, key_IDs never reused) and answers with an
  ``ack`` authenticated with the request's one-time ack key (bound to the request's tag);
  every hop checks and re-signs the ack on the way back, so the source marks the keys ready
  only on an authentic ack.
* Link key per hop and message: exactly ``|K|`` bits of pad + 256 bits of MAC key for the
  request + 256 bits for the ack, all from the sender's half, consumed in one commit.
* A transport failure leaves the outcome unknown: the source keeps the keys pending (never
  released) and later asks the destination to ``resolve`` them: stored → ready at both ends,
  absent → tombstoned there (a late copy is refused) and voided here. Delivered to both or
  to neither.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from kms.directory import Directory
from kms.errors import AuthenticationFailed, InsufficientKey, KmsError, NoRoute, RelayError
from kms.forwarding import ForwardingTable
from kms.key_pool import KeyPool, KeyRecord
from kms.key_store import KeyRef, LinkKeyStore
from kms.otp_mac import MAC_ALGORITHM, MAC_KEY_BYTES, mac_tag, verify_tag, xor_bytes

log = logging.getLogger(__name__)

EXT_KEYS_PATH = "/relay/v1/ext_keys"
RESOLVE_PATH = "/relay/v1/resolve"
CONTROL_PATH = "/relay/v1/control"
RELAY_TIMEOUT_S = 10.0
#: no retry of a request that reached the neighbour (a replayed ext_keys would be refused, and
#: an unknown outcome is resolved, not retried); a keep-alive connection the neighbour closed
#: meanwhile is reopened before use (as requests' default adapter did)
_RETRIES = urllib3.Retry(0, read=False)
_TIMEOUT = urllib3.Timeout(connect=RELAY_TIMEOUT_S, read=RELAY_TIMEOUT_S)
_JSON_HEADERS = {"Content-Type": "application/json"}
#: what ext_keys may carry: QKD keys, and QKD seeds of hybrid requests (ADR 0009)
RELAYED_PROVENANCES = frozenset({"qkd", "seed"})


@dataclass(frozen=True)
class RelayTls:
    ca: Path
    cert: Path
    key: Path


def canonical(obj: Any) -> bytes:
    """The bytes a MAC covers: sorted-key compact JSON."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def key_descriptor(record: KeyRecord) -> dict[str, Any]:
    """Wire description of one key in ``ext_keys`` (no key material)."""
    out: dict[str, Any] = {"key_ID": record.key_id, "master_SAE_ID": record.master,
                           "slave_SAE_ID": record.slave, "size": len(record.key or b"") * 8}
    if record.stream_id is not None:
        out["Key_stream_ID"] = record.stream_id
        out["index"] = record.stream_index
    if record.expires is not None:
        out["expires"] = record.expires
    if record.provenance != "qkd":
        out["provenance"] = record.provenance   # "seed": QKD part of a hybrid request
    return out


def batch_descriptor(records: Sequence[KeyRecord]) -> dict[str, Any] | None:
    """The compact wire description of keys that differ only by key_ID (one pair, size,
    expiry and provenance, no 004 stream position): ``{"master_SAE_ID", "slave_SAE_ID",
    "size", "expires"?, "provenance"?}`` beside a ``key_IDs`` list. None if they differ
    otherwise (the message then lists one descriptor per key). A relay batch of 1,000 keys
    was 1,000 JSON objects encoded, MAC'd, decoded and checked at every hop."""
    first = records[0]
    size = len(first.key or b"")
    for r in records:
        if (r.master != first.master or r.slave != first.slave or r.stream_id is not None
                or r.expires != first.expires or r.provenance != first.provenance
                or len(r.key or b"") != size):
            return None
    out: dict[str, Any] = {"master_SAE_ID": first.master, "slave_SAE_ID": first.slave,
                           "size": size * 8}
    if first.expires is not None:
        out["expires"] = first.expires
    if first.provenance != "qkd":
        out["provenance"] = first.provenance
    return out


def build_ext_keys(session: str | None, records: Sequence[KeyRecord],
                   link: LinkKeyStore, leg: str | None = None) -> tuple[dict, bytes]:
    """Encrypt and authenticate keys for the next hop.

    Consumes |K| + 64 bytes of this end's half of the link: the pad, the request's one-time
    MAC key and the ack's one-time MAC key. Returns the body and the ack MAC key. ``leg``
    (a multipath session's route leg) is carried in the body and covered by the tag.
    """
    plain = b"".join(r.key or b"" for r in records)
    ref, material = link.take_outgoing(len(plain) + 2 * MAC_KEY_BYTES)
    pad = material[:len(plain)]
    mac_key = material[len(plain):len(plain) + MAC_KEY_BYTES]
    ack_key = material[len(plain) + MAC_KEY_BYTES:]
    body: dict[str, Any] = {"session": session}
    batch = batch_descriptor(records)
    if batch is None:
        body["keys"] = [key_descriptor(r) for r in records]
    else:
        body["batch"] = batch
        body["key_IDs"] = [r.key_id for r in records]
    body["key_ref"] = ref.to_wire()
    body["ciphertext"] = base64.b64encode(xor_bytes(plain, pad)).decode()
    body["mac_alg"] = MAC_ALGORITHM
    if leg is not None:
        body["leg"] = leg
    body["mac"] = base64.b64encode(mac_tag(canonical(body), mac_key)).decode()
    return body, ack_key


def _descriptors(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-key descriptors of an ``ext_keys`` body in either form (``keys``, or ``batch`` +
    ``key_IDs``); raises KeyError/TypeError/ValueError on a malformed body."""
    if "batch" in body:
        if "keys" in body:
            raise ValueError("both keys and batch")
        batch, key_ids = body["batch"], body["key_IDs"]
        if not isinstance(batch, dict) or not isinstance(key_ids, list) or "key_ID" in batch:
            raise TypeError("batch")
        return [batch] * len(key_ids)   # the same descriptor for every key (read-only)
    keys = body["keys"]
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise TypeError("keys")
    return keys


def open_ext_keys(body: Mapping[str, Any], link: LinkKeyStore) -> tuple[list[KeyRecord], bytes]:
    """Check and decrypt an ``ext_keys`` body; consumes the referenced link bytes.

    Returns the keys and the one-time MAC key for the ack. The tag covers every field of
    the body but ``mac``.
    """
    try:
        if body.get("mac_alg") != MAC_ALGORITHM:
            raise AuthenticationFailed(
                f"ext_keys MAC algorithm {body.get('mac_alg')!r} is not {MAC_ALGORITHM!r}")
        unsigned = {k: v for k, v in body.items() if k != "mac"}
        tag = base64.b64decode(body["mac"], validate=True)
        cipher = base64.b64decode(body["ciphertext"], validate=True)
        descriptors = _descriptors(body)
        sizes = [int(k["size"]) for k in descriptors]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AuthenticationFailed(f"malformed ext_keys: {type(exc).__name__}") from None
    if not sizes or any(s <= 0 or s % 8 for s in sizes) or sum(sizes) // 8 != len(cipher):
        raise AuthenticationFailed("ext_keys sizes do not match the ciphertext")
    ref = KeyRef.from_wire(str(body["key_ref"]))
    if ref.length != len(cipher) + 2 * MAC_KEY_BYTES:
        raise AuthenticationFailed("ext_keys key reference has the wrong length")
    material = link.take_incoming(ref)
    pad = material[:len(cipher)]
    mac_key = material[len(cipher):len(cipher) + MAC_KEY_BYTES]
    ack_key = material[len(cipher) + MAC_KEY_BYTES:]
    if not verify_tag(canonical(unsigned), mac_key, tag):
        raise AuthenticationFailed("ext_keys MAC mismatch")
    plain = xor_bytes(cipher, pad)
    if any(k.get("provenance", "qkd") not in RELAYED_PROVENANCES for k in descriptors):
        raise AuthenticationFailed("ext_keys carries a key that is not QKD key")
    session = body["session"]
    if "batch" in body:      # one pair, size and expiry: no per-key descriptor to read
        batch, n = body["batch"], sizes[0] // 8
        master, slave = str(batch["master_SAE_ID"]), str(batch["slave_SAE_ID"])
        expires, provenance = batch.get("expires"), str(batch.get("provenance", "qkd"))
        return [KeyRecord(str(key_id), master, slave, plain[i * n:(i + 1) * n], None, None,
                          session, expires, provenance)
                for i, key_id in enumerate(body["key_IDs"])], ack_key
    records, offset = [], 0
    for desc, size in zip(descriptors, sizes):
        records.append(KeyRecord(
            key_id=str(desc["key_ID"]), master=str(desc["master_SAE_ID"]),
            slave=str(desc["slave_SAE_ID"]), key=plain[offset:offset + size // 8],
            stream_id=desc.get("Key_stream_ID"), stream_index=desc.get("index"),
            session=session, expires=desc.get("expires"),
            provenance=str(desc.get("provenance", "qkd"))))
        offset += size // 8
    return records, ack_key


def build_ack(key_ids: Sequence[str], request_mac: str, ack_key: bytes) -> dict:
    """The ack for a request, authenticated with the request's ack key and bound to its tag."""
    body = {"status": "stored", "key_IDs": list(key_ids)}
    tag = mac_tag(canonical({**body, "request_mac": request_mac}), ack_key)
    return {**body, "mac": base64.b64encode(tag).decode()}


def check_ack(ack: Mapping[str, Any], key_ids: Sequence[str], request_mac: str,
              ack_key: bytes) -> None:
    try:
        body = {"status": ack["status"], "key_IDs": ack["key_IDs"]}
        tag = base64.b64decode(ack["mac"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise AuthenticationFailed("malformed ack") from None
    if not verify_tag(canonical({**body, "request_mac": request_mac}), ack_key, tag):
        raise AuthenticationFailed("ack MAC mismatch")
    if body["status"] != "stored" or list(body["key_IDs"]) != list(key_ids):
        raise AuthenticationFailed("ack does not acknowledge the keys sent")


@dataclass(frozen=True)
class RelayResponse:
    """A neighbour KM's answer to a relay-plane call."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        """The JSON body (ValueError if it is not JSON)."""
        return json.loads(self.content)


class RelayRejected(RelayError):
    """The path refused the keys: stored nowhere."""

    http_status = 403


class RelayUnknown(RelayError):
    """The outcome is unknown (transport failure); the source must resolve it."""

    http_status = 504


#: Seconds a KM waits for the forwarding rule of a session whose message reaches it before
#: its configuration does (the controller pushes a path's KMs in parallel).
RULE_WAIT_S = 2.0

@dataclass(frozen=True)
class RelayContext:
    """What the relay engine needs from its KM (callables so the KM can swap config live)."""

    node_name: str
    qkdn_id: str
    directory: Callable[[], Directory]
    forwarding: Callable[[], ForwardingTable]
    link_store: Callable[[str], LinkKeyStore]       # neighbour node name → store
    pool: KeyPool
    local_saes: Callable[[], frozenset[str]]
    clock: Callable[[], float]                      # wall clock (expiry stamps)
    control_handler: Callable[[str | None, dict], dict]   # 004 stream control at an endpoint
    fault_delays: Mapping[str, float]
    #: ``await_rule(session, timeout_s)``: block until this KM has a forwarding rule for
    #: ``session`` or ``timeout_s`` passed; whether it has one
    await_rule: Callable[[str, float], bool]
    #: ``on_hop(role, session, neighbour, keys)``: source — an authentic ack arrived;
    #: relay / destination — an authentic message arrived (telemetry; never key material)
    on_hop: Callable[[str, str | None, str, int], None] = lambda *_: None
    #: ``locate_km(node)``: the base URL of a KM the directory has none for ("" if unknown)
    locate_km: Callable[[str], str] | None = None


class RelayEngine:
    """Originates, forwards and terminates relay messages."""

    def __init__(self, ctx: RelayContext, tls: RelayTls) -> None:
        self.ctx = ctx
        self._tls = tls
        self._shared: urllib3.PoolManager | None = None
        self._resolve_lock = threading.Lock()
        self._in_flight: set[str] = set()    # key_IDs of relays this process is still running
        self._in_flight_lock = threading.Lock()
        self.rejected_messages = 0

    # -- transport --------------------------------------------------------------------------
    def _connections(self) -> urllib3.PoolManager:
        """Keep-alive connections to the neighbours (mutual TLS, the network CA), shared by
        all threads. urllib3 directly: requests' session layer (settings merge, hooks,
        cookies, adapters) cost ~1 ms of CPU per call, once per hop of every relay message."""
        pool = self._shared
        if pool is None:
            with self._in_flight_lock:
                if self._shared is None:
                    context = ssl.create_default_context(cafile=str(self._tls.ca))
                    context.load_cert_chain(str(self._tls.cert), str(self._tls.key))
                    self._shared = urllib3.PoolManager(num_pools=16, maxsize=64,
                                                       ssl_context=context)
                pool = self._shared
        return pool

    def close(self) -> None:
        """Close the keep-alive connections to the neighbours (``KeyManager.stop``; a later
        call opens new ones)."""
        with self._in_flight_lock:
            pool, self._shared = self._shared, None
        if pool is not None:
            pool.clear()

    def _post(self, neighbour: str, path: str, body: dict) -> RelayResponse:
        url = self.ctx.directory().node(neighbour).relay_url or self._locate(neighbour)
        if not url:
            raise RelayUnknown(f"no relay URL for {neighbour}")
        try:
            response = self._connections().urlopen(
                "POST", url + path, body=canonical(body), headers=_JSON_HEADERS,
                timeout=_TIMEOUT, retries=_RETRIES, redirect=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RelayUnknown(f"{neighbour} unreachable: {type(exc).__name__}") from None
        return RelayResponse(response.status, response.data)

    def _locate(self, node: str) -> str:
        """The URL of a KM that is not a neighbour (read when needed: it may restart on
        another port), or ""."""
        if self.ctx.locate_km is None:
            return ""
        try:
            return self.ctx.locate_km(node)
        except (OSError, ValueError, KeyError) as exc:
            log.info("%s: KM %s not located: %s", self.ctx.node_name, node, exc)
            return ""

    def _delay(self, point: str) -> None:
        seconds = self.ctx.fault_delays.get(point)
        if seconds:
            log.warning("%s: fault injection: pausing %.1fs at %s", self.ctx.node_name, seconds, point)
            time.sleep(seconds)

    # -- routing ----------------------------------------------------------------------------
    def _await_rule(self, session: str | None, records: Sequence[KeyRecord]) -> None:
        """Keys of a session this KM has no rule for and no local SAE of: the controller
        configures every KM of a path at once, so this relay's rule may land a moment after
        its neighbour's; wait for it (up to RULE_WAIT_S) instead of refusing."""
        if session is None or session in self.ctx.forwarding().rules:
            return
        local = self.ctx.local_saes()
        if any(r.master in local or r.slave in local for r in records):
            return
        self.ctx.await_rule(session, RULE_WAIT_S)

    def next_node(self, session: str | None, sender_node: str | None,
                  direct_peer: str | None = None, leg: str | None = None) -> str | None:
        """The neighbour (node name) a message goes to; None if this KM is the endpoint.

        ``leg`` names the route leg of a multipath session (its VIRT link)."""
        if session is None or session not in self.ctx.forwarding().rules:
            if session is not None and sender_node is None and direct_peer is None:
                raise NoRoute(f"no forwarding rule for session {session}")
            return direct_peer if sender_node is None else None
        sender_id = None
        if sender_node is not None:
            sender_id = self.ctx.directory().node(sender_node).qkdn_id
        nxt = self.ctx.forwarding().rule(session, leg).forward_from(sender_id)
        return None if nxt is None else self.ctx.directory().node_by_qkdn_id(nxt).name

    # -- source -----------------------------------------------------------------------------
    def originate(self, session: str | None, next_node: str, records: Sequence[KeyRecord], *,
                  master_local: bool, slave_local: bool, leg: str | None = None) -> None:
        """Relay new keys toward the peer; on return they are ready at both ends.

        ``leg``: the route leg (VIRT link) of a multipath session the keys follow.
        Raises :class:`RelayRejected` (stored nowhere, voided here) or :class:`RelayUnknown`
        (pending; resolved later by :meth:`resolve_pending`).
        """
        link = self.ctx.link_store(next_node)
        body, ack_key = build_ext_keys(session, records, link, leg)  # InsufficientKey: nothing recorded
        key_ids = [r.key_id for r in records]
        with self._in_flight_lock:
            self._in_flight.update(key_ids)
        try:
            self.ctx.pool.add_pending(records, master_local=master_local, slave_local=slave_local,
                                      next_hop=next_node, now=self.ctx.clock(), leg=leg)
            self._delay("source_after_pending")
            try:
                ack = self._send_ext_keys(next_node, body)
                check_ack(ack, key_ids, body["mac"], ack_key)
            except RelayRejected:
                self.ctx.pool.void(key_ids)
                raise
            except AuthenticationFailed as exc:
                log.warning("%s: ack from %s rejected: %s", self.ctx.node_name, next_node, exc)
                raise RelayUnknown(f"ack from {next_node} not authentic") from None
            self.ctx.pool.mark_ready(key_ids, for_local_sae=master_local or slave_local)
            self.ctx.on_hop("source", session, next_node, len(records))
        finally:
            with self._in_flight_lock:
                self._in_flight.difference_update(key_ids)

    def _send_ext_keys(self, neighbour: str, body: dict) -> dict:
        response = self._post(neighbour, EXT_KEYS_PATH, body)
        if response.status_code == 200:
            return response.json()
        message = _message(response)
        if response.status_code in (400, 403, 409, 503):
            raise RelayRejected(f"{neighbour}: {message}")
        raise RelayUnknown(f"{neighbour}: {message}")

    # -- relay / destination ----------------------------------------------------------------
    def handle_ext_keys(self, sender_node: str, body: dict) -> tuple[int, dict]:
        """Process an ``ext_keys`` from neighbour ``sender_node``; returns (HTTP status, body)."""
        try:
            incoming = self.ctx.link_store(sender_node)
            records, ack_key = open_ext_keys(body, incoming)
        except AuthenticationFailed as exc:
            self.rejected_messages += 1
            log.warning("%s: relay message from %s rejected: %s", self.ctx.node_name,
                        sender_node, exc)
            return 403, {"status": "rejected", "message": "message not authentic or replayed"}
        except (NoRoute, KmsError) as exc:
            return 403, {"status": "rejected", "message": str(exc)}
        session, leg = body.get("session"), body.get("leg")
        key_ids = [r.key_id for r in records]
        self._await_rule(session, records)
        try:
            nxt = self.next_node(session, sender_node, leg=leg)
        except NoRoute as exc:
            return 403, {"status": "rejected", "message": str(exc)}
        if nxt is None:
            return self._terminate(sender_node, records, body["mac"], ack_key, session)
        self.ctx.on_hop("relay", session, sender_node, len(records))
        self._delay("relay_before_forward")
        try:
            outgoing = self.ctx.link_store(nxt)
            forward, forward_ack_key = build_ext_keys(session, records, outgoing, leg)
        except InsufficientKey:
            return 503, {"status": "rejected", "message": f"insufficient key on link to {nxt}"}
        except NoRoute as exc:
            return 403, {"status": "rejected", "message": str(exc)}
        try:
            ack = self._send_ext_keys(nxt, forward)
            check_ack(ack, key_ids, forward["mac"], forward_ack_key)
        except RelayRejected as exc:
            return 403, {"status": "rejected", "message": str(exc)}
        except (RelayUnknown, AuthenticationFailed) as exc:
            return 504, {"status": "unknown", "message": str(exc)}
        log.info("%s: relayed %d key(s) of session %s from %s to %s", self.ctx.node_name,
                 len(records), session, sender_node, nxt)
        return 200, build_ack(key_ids, body["mac"], ack_key)

    def _terminate(self, sender_node: str, records: list[KeyRecord], request_mac: str,
                   ack_key: bytes, session: str | None = None) -> tuple[int, dict]:
        local = self.ctx.local_saes()
        first = records[0]
        if any(r.slave not in local and r.master not in local for r in records):
            return 403, {"status": "rejected", "message": "no local SAE for these keys"}
        self._delay("destination_before_store")
        try:
            self.ctx.pool.store_ready(records, master_local=first.master in local,
                                      slave_local=first.slave in local, now=self.ctx.clock())
        except RelayError as exc:
            self.rejected_messages += 1
            log.warning("%s: relay from %s rejected: %s", self.ctx.node_name, sender_node, exc)
            return 409, {"status": "rejected", "message": "key_ID already known"}
        self.ctx.on_hop("destination", session, sender_node, len(records))
        self._delay("destination_before_ack")
        log.info("%s: stored %d relayed key(s) from %s", self.ctx.node_name, len(records), sender_node)
        return 200, build_ack([r.key_id for r in records], request_mac, ack_key)

    # -- resolve (unknown outcomes) ---------------------------------------------------------
    def handle_resolve(self, sender_node: str, body: dict) -> tuple[int, dict]:
        session, key_ids = body.get("session"), [str(k) for k in body.get("key_IDs", [])]
        leg = body.get("leg")
        try:
            nxt = self.next_node(session, sender_node, leg=leg)
        except NoRoute as exc:
            return 403, {"message": str(exc)}
        if nxt is None:
            return 200, {"outcome": self.ctx.pool.resolve(key_ids)}
        try:
            response = self._post(nxt, RESOLVE_PATH, _resolve_body(session, key_ids, leg))
        except RelayUnknown as exc:
            return 504, {"message": str(exc)}
        return response.status_code, response.json()

    def resolve_pending(self) -> int:
        """Settle every pending relay that can be settled now; returns how many keys settled."""
        settled = 0
        with self._resolve_lock:
            for pending in self.ctx.pool.pending_relays():
                with self._in_flight_lock:
                    if self._in_flight.intersection(pending.key_ids):
                        continue   # still running here: its own outcome settles it
                try:
                    response = self._post(pending.next_hop, RESOLVE_PATH,
                                          _resolve_body(pending.session, pending.key_ids,
                                                        pending.leg))
                except RelayUnknown:
                    continue
                if response.status_code != 200:
                    continue
                outcome = response.json().get("outcome", {})
                stored = [k for k in pending.key_ids if outcome.get(k) == "stored"]
                voided = [k for k in pending.key_ids if outcome.get(k) == "void"]
                self.ctx.pool.mark_ready(stored)
                self.ctx.pool.void(voided)
                settled += len(stored) + len(voided)
                log.info("%s: resolved pending relay: %d stored, %d void", self.ctx.node_name,
                         len(stored), len(voided))
        return settled

    # -- 004 stream control (end KM to end KM) ----------------------------------------------
    def send_control(self, session: str | None, peer_node: str, body: dict,
                     leg: str | None = None) -> dict:
        """A 004 stream's control message, straight to the KM at the stream's other end
        (``peer_node``): it carries no key material, so the relays of the path need not see
        it, and a set-up costs one exchange whatever the number of hops."""
        extra = {"leg": leg} if leg is not None else {}
        response = self._post(peer_node, CONTROL_PATH, {"session": session, **extra, **body})
        if response.status_code != 200:
            raise RelayUnknown(f"{peer_node}: {_message(response)}")
        return response.json()

    def handle_control(self, sender_node: str, body: dict) -> tuple[int, dict]:
        """A control message from the KM at a stream's other end (``sender_node``)."""
        session = body.get("session")
        if isinstance(session, str) and session not in self.ctx.forwarding().rules:
            # the controller configures a path's KMs in parallel: the other end's open may
            # arrive before this KM's own configuration of the session
            self.ctx.await_rule(session, RULE_WAIT_S)
        return 200, self.ctx.control_handler(sender_node, body)


def _resolve_body(session: str | None, key_ids: Sequence[str], leg: str | None) -> dict:
    body: dict[str, Any] = {"session": session, "key_IDs": list(key_ids)}
    if leg is not None:
        body["leg"] = leg
    return body


def _message(response: RelayResponse) -> str:
    try:
        return str(response.json().get("message", response.status_code))
    except ValueError:
        return f"HTTP {response.status_code}"
