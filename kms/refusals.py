"""The controller's refusals of requests this KM reported (pure; docs/adr/0010).

The controller writes ``qkdn-key-manager:km_refusals/refusal`` entries into the node's running
configuration, keyed by the ``km_request/request_id`` the KM put in its
``sdqkdn_application_new``. :func:`refusals_from_running` reads them; the KM ends the waiting
request with :class:`Refusal`'s ETSI 004 status (and counter-proposal) or ETSI 014 error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kms.forwarding import KM_MODULE, NODE

EXT_REFUSALS = f"{KM_MODULE}:km_refusals"   # in qkd_node: refusal[request_id]


@dataclass(frozen=True)
class CounterProposal:
    """The QoS the controller proposes instead (004 status 7); None = as requested."""

    max_bps: int | None = None
    min_bps: int | None = None
    priority: int | None = None
    key_chunk_size: int | None = None


@dataclass(frozen=True)
class Refusal:
    """One refused request."""

    request_id: str
    sae_id: str
    peer_sae_id: str | None
    etsi004_status: int
    reason: str
    access_denied: bool = False
    detail: str = ""
    session_id: str | None = None
    counter_proposal: CounterProposal | None = None

    @property
    def message(self) -> str:
        """Human-readable text for the application (never key material)."""
        text = f"refused by the controller: {self.reason}"
        return f"{text} ({self.detail})" if self.detail else text


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def refusals_from_running(running: Mapping[str, Any]) -> dict[str, Refusal]:
    """The refusal entries of a running configuration (RFC 7951 JSON), by request_id."""
    node = running.get(NODE) or {}
    entries = (node.get(EXT_REFUSALS) or {}).get("refusal") or []
    out: dict[str, Refusal] = {}
    for entry in entries:
        proposal = entry.get("counter_proposal")
        counter = None if proposal is None else CounterProposal(
            _int(proposal.get("max_bps")), _int(proposal.get("min_bps")),
            _int(proposal.get("priority")), _int(proposal.get("key_chunk_size")))
        request_id = str(entry["request_id"]).lower()
        out[request_id] = Refusal(
            request_id, str(entry["sae_id"]), entry.get("peer_sae_id"),
            int(entry["etsi004_status"]), str(entry.get("reason", "")),
            bool(entry.get("access_denied", False)), str(entry.get("detail", "")),
            entry.get("app_id"), counter)
    return out
