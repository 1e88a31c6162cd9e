"""Monitoring element: decides, from each link change, whether the link stays usable, which
alarms to raise and which sessions must be rerouted. Pure decisions; the controller applies
them (flag in the topology DB, alarm events to the orchestrator, reroute via admission
control, deletions through the southbound).

Rules (thresholds configurable, :class:`MonitoringThresholds`):

- QBER above ``qber_alarm`` (default 0.11, the BB84 limit; operators may set it lower):
  possible eavesdropping. The link is flagged unusable and a MAJOR ``qber-high`` alarm is
  raised. The flag clears only once QBER is at or below ``qber_clear`` (hysteresis, default
  80 % of the alarm threshold), with a MINOR ``qber-cleared`` event.
- Link down (``sdqkdn_link_down``, an OFF status, its interface down): MAJOR ``link-down``;
  back ACTIVE/PASSIVE: MINOR ``link-restored``.
- Overloaded (consumption above generation): MINOR ``link-overloaded`` (weights already
  penalise it; sessions stay).
- An agent's own ``alarm``/``event`` on the link is passed on as ``agent-alarm``.
- Whenever the link is not usable after the change, every session using it is to be
  rerouted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from sdn_controller.identifiers import LinkId, SessionId
from sdn_controller.link_metrics import LinkMetrics
from sdn_controller.topology_db import LinkUpdate

QBER_FLAG_PREFIX = "QBER"


@dataclass(frozen=True)
class MonitoringThresholds:
    qber_alarm: float = 0.11
    qber_clear: float | None = None  #: default 0.8 x qber_alarm

    def __post_init__(self) -> None:
        if not 0 < self.qber_alarm < 0.5:
            raise ValueError("qber_alarm must be in (0, 0.5)")
        if self.qber_clear is not None and not 0 <= self.qber_clear <= self.qber_alarm:
            raise ValueError("qber_clear must be in [0, qber_alarm]")

    @property
    def clear_below(self) -> float:
        return self.qber_clear if self.qber_clear is not None else 0.8 * self.qber_alarm


class AlarmKind(str, enum.Enum):
    QBER_HIGH = "qber-high"
    QBER_CLEARED = "qber-cleared"
    LINK_DOWN = "link-down"
    LINK_RESTORED = "link-restored"
    LINK_OVERLOADED = "link-overloaded"
    AGENT_ALARM = "agent-alarm"


class Severity(str, enum.Enum):
    """ETSI 015 ``SEVERITY-TYPES``."""

    MAJOR = "MAJOR"
    MINOR = "MINOR"


@dataclass(frozen=True)
class AlarmEvent:
    kind: AlarmKind
    qkdl_id: LinkId
    severity: Severity
    message: str
    at: float


@dataclass(frozen=True)
class MonitoringDecision:
    qkdl_id: LinkId
    flag_changed: bool
    flag_reason: str | None        #: the link's monitoring flag after the decision
    usable: bool                   #: may routing use the link after the decision?
    alarms: tuple[AlarmEvent, ...]
    reroute: frozenset[SessionId]  #: sessions to move off the link


def assess(update: LinkUpdate, thresholds: MonitoringThresholds,
           sessions_by_link: Mapping[LinkId, Iterable[SessionId]]) -> MonitoringDecision:
    """The monitoring decision for one link change.

    >>> from sdn_controller.link_metrics import LinkMetrics, LinkStatus
    >>> from sdn_controller.topology_db import LinkUpdate
    >>> before = LinkMetrics("l1", "a", "b", LinkStatus.ACTIVE, skr=1000, qber=0.02)
    >>> after = LinkMetrics("l1", "a", "b", LinkStatus.ACTIVE, skr=900, qber=0.16)
    >>> d = assess(LinkUpdate(before, after, "sdqkdn_link_perf_update"),
    ...            MonitoringThresholds(qber_alarm=0.11), {"l1": {"s1", "s2"}})
    >>> d.usable, sorted(d.reroute), d.alarms[0].kind.value
    (False, ['s1', 's2'], 'qber-high')
    """
    cur, prev = update.current, update.previous
    at = cur.updated_at
    alarms: list[AlarmEvent] = []
    flag = cur.flag_reason
    if cur.qber is not None:
        qber_flagged = flag is not None and flag.startswith(QBER_FLAG_PREFIX)
        if cur.qber > thresholds.qber_alarm and flag is None:
            flag = (f"{QBER_FLAG_PREFIX} {cur.qber:.4f} above {thresholds.qber_alarm:.4f}: "
                    "possible eavesdropping")
            alarms.append(AlarmEvent(AlarmKind.QBER_HIGH, cur.qkdl_id, Severity.MAJOR, flag, at))
        elif qber_flagged and cur.qber <= thresholds.clear_below:
            flag = None
            alarms.append(AlarmEvent(AlarmKind.QBER_CLEARED, cur.qkdl_id, Severity.MINOR,
                                     f"QBER {cur.qber:.4f} back at or below "
                                     f"{thresholds.clear_below:.4f}", at))
    was_down = prev is not None and prev.down_reason is not None
    if cur.down_reason is not None and not was_down:
        alarms.append(AlarmEvent(AlarmKind.LINK_DOWN, cur.qkdl_id, Severity.MAJOR,
                                 f"link down: {cur.down_reason}", at))
    elif was_down and cur.down_reason is None:
        alarms.append(AlarmEvent(AlarmKind.LINK_RESTORED, cur.qkdl_id, Severity.MINOR,
                                 "link restored", at))
    if cur.overloaded and not (prev is not None and prev.overloaded):
        alarms.append(AlarmEvent(AlarmKind.LINK_OVERLOADED, cur.qkdl_id, Severity.MINOR,
                                 f"key consumption {cur.expected_consumption} bit/s above "
                                 f"generation {cur.key_rate_bps} bit/s", at))
    if update.event in ("alarm", "event") and update.message:
        severity = Severity.MAJOR if update.severity == "MAJOR" else Severity.MINOR
        alarms.append(AlarmEvent(AlarmKind.AGENT_ALARM, cur.qkdl_id, severity,
                                 update.message, at))
    after: LinkMetrics = replace(cur, flag_reason=flag)
    reroute = frozenset() if after.usable else frozenset(sessions_by_link.get(cur.qkdl_id, ()))
    return MonitoringDecision(cur.qkdl_id, flag != cur.flag_reason, flag, after.usable,
                              tuple(alarms), reroute)
