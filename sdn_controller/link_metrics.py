"""What the controller knows about one physical QKD link: ends, status and live metrics.

A value (frozen); the topology database produces it, the routing element and the monitoring
element read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sdn_controller.identifiers import LinkId, NodeId


class LinkStatus(str, enum.Enum):
    """ETSI 015 ``LINK-STATUS-TYPES`` (bare identity names)."""

    ACTIVE = "ACTIVE"    #: generating key
    PASSIVE = "PASSIVE"  #: not generating, pool still holds key
    PENDING = "PENDING"  #: waiting for activation, no key
    OFF = "OFF"          #: no generation and no key


@dataclass(frozen=True)
class LinkMetrics:
    """A physical link between ``node_a`` and ``node_b`` and its latest state.

    Rates are bit/s (ETSI 015 ``skr``/``eskr``); ``stored_bits`` is the key held for the
    link in the key stores (None = not reported); ``down_reason`` is set by a link-down
    notification and cleared when the agent reports the link ACTIVE again; ``flag_reason``
    is set by the monitoring element (e.g. QBER above the alarm threshold).
    """

    qkdl_id: LinkId
    node_a: NodeId
    node_b: NodeId
    status: LinkStatus = LinkStatus.PENDING
    enabled: bool = True
    skr: int = 0
    eskr: int = 0
    expected_consumption: int = 0
    qber: float | None = None
    stored_bits: int | None = None
    overloaded: bool = False
    down_reason: str | None = None
    flag_reason: str | None = None
    updated_at: float = 0.0

    @property
    def key_rate_bps(self) -> int:
        """The rate applications can draw: ``eskr`` when reported, else ``skr``."""
        return self.eskr if self.eskr > 0 else self.skr

    @property
    def out_of_key(self) -> bool:
        """Neither generating nor holding any key."""
        return self.key_rate_bps <= 0 and not self.stored_bits

    @property
    def usable(self) -> bool:
        """May the routing element use this link at all?

        Not when disabled, down, flagged by monitoring, PENDING/OFF, or out of key."""
        return (self.enabled and self.down_reason is None and self.flag_reason is None
                and self.status in (LinkStatus.ACTIVE, LinkStatus.PASSIVE)
                and not self.out_of_key)

    def ends(self) -> tuple[NodeId, NodeId]:
        return (self.node_a, self.node_b)
