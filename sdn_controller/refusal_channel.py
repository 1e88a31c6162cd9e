"""How a refusal reaches the KM whose application waits for a session (docs/adr/0010).

ETSI 015 gives a controller no way to answer an ``sdqkdn_application_new``; our
``qkdn-key-manager`` module adds one: the controller writes a ``km_refusals/refusal`` entry
(keyed by the ``km_request/request_id`` the KM put in its notification) into the agent's
running datastore; the KM sees it through its datastore listener and ends the waiting request
with the ETSI 004 status (and counter-proposal) or the ETSI 014 error the entry gives. The
controller removes entries older than :data:`REFUSAL_RETENTION_S` at its periodic ``get``
(:func:`stale_refusal_ids`), so the datastore does not grow and a restarted controller cleans
up after its predecessor.

:class:`SessionRefusal` is the value; :class:`NetconfRefusals` is the
:class:`~sdn_controller.controller.KmSignals` that sends it (on a thread pool: the controller
may hold its lock when it refuses).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sdn_controller.identifiers import NodeId, SaeId, SessionId
from sdn_controller.session_config import QoS

log = logging.getLogger(__name__)

#: How long a refusal entry stays in an agent's datastore (seconds).
REFUSAL_RETENTION_S = 30.0
#: request_id of a refusal whose request carried none (an older KM): the KM matches the
#: waiting request by its SAE pair instead; derived so that a repeat overwrites the entry.
FALLBACK_REQUEST_NS = uuid.UUID("5d0f6c1a-7b2e-4c3d-9e8f-1a2b3c4d5e6f")


@dataclass(frozen=True)
class SessionRefusal:
    """What a KM must tell its application when the controller refuses (004 status; 014
    401 for access refusals, 503 otherwise), with the counter-proposal for status 7."""

    sae_id: SaeId
    peer_sae_id: SaeId
    session_id: SessionId | None
    status: int
    reason: str
    detail: str = ""
    counter_proposal: QoS | None = None
    access_denied: bool = False
    #: ``km_request/request_id`` of the refused request (None: match by SAE pair)
    request_id: str | None = None

    def entry_id(self, node_id: str) -> str:
        """The list key of this refusal at ``node_id``."""
        if self.request_id:
            return str(uuid.UUID(self.request_id))
        return str(uuid.uuid5(FALLBACK_REQUEST_NS,
                              f"{node_id}\x00{self.sae_id}\x00{self.peer_sae_id}"))


def date_and_time(at: float) -> str:
    """``yang:date-and-time`` of a POSIX time (UTC, milliseconds).

    >>> date_and_time(0.25)
    '1970-01-01T00:00:00.250Z'
    """
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_date_and_time(text: str) -> float | None:
    """POSIX time of a ``yang:date-and-time`` (None if unreadable).

    >>> parse_date_and_time('1970-01-01T00:00:01.500Z'), parse_date_and_time('x')
    (1.5, None)
    """
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def stale_refusal_ids(node: Mapping[str, Any], now: float,
                      retention_s: float = REFUSAL_RETENTION_S) -> list[str]:
    """request_ids of the refusal entries of a normalised ``qkd_node`` older than
    ``retention_s`` (or without a readable ``refused_at``)."""
    entries = (node.get("km_refusals") or {}).get("refusal") or []
    stale = []
    for entry in entries:
        at = parse_date_and_time(str(entry.get("refused_at") or ""))
        if at is None or now - at >= retention_s:
            stale.append(str(entry.get("request_id")))
    return sorted(stale)


class NetconfRefusals:
    """:class:`~sdn_controller.controller.KmSignals` over NETCONF: each refusal becomes an
    edit-config of ``km_refusals/refusal`` on the node's agent, sent on ``executor``.
    ``record`` (e.g. the daemon's log for ``sessions.json``) sees every refusal."""

    def __init__(self, configurators: Mapping[NodeId, Any], executor: Executor, *,
                 clock: Callable[[], float],
                 record: Callable[[NodeId, SessionRefusal], None] | None = None) -> None:
        self.configurators = configurators
        self.executor = executor
        self.clock = clock
        self.record = record

    def refuse(self, node_id: NodeId, refusal: SessionRefusal) -> None:
        from sdn_controller.config_payloads import refusal_payload

        if self.record is not None:
            self.record(node_id, refusal)
        if refusal.status == 0:  # a close, not a refusal: nothing waits for an answer
            return
        configurator = self.configurators.get(node_id)
        if configurator is None:
            log.warning("refusal for %s: no session to node %s", refusal.sae_id, node_id)
            return
        payload = refusal_payload(node_id, refusal, refused_at=date_and_time(self.clock()))
        self.executor.submit(self._send, configurator, node_id, payload, refusal)

    @staticmethod
    def _send(configurator: Any, node_id: NodeId, payload: Any, refusal: SessionRefusal
              ) -> None:
        try:
            configurator.edit_config(payload)
        except Exception as exc:  # noqa: BLE001 - any failure: the KM ends it by its timeout
            log.warning("refusal of %s at %s not delivered: %s", refusal.sae_id, node_id, exc)
