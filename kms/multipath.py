"""Which route leg the next relay message of a multipath session takes (pure, no I/O).

A session the controller split over several paths has one forwarding rule per leg at its
source KM, each with the key rate the controller reserved for it (``virt_bandwidth``). Each
relay message carries whole keys over exactly one leg (``docs/adr/0011-multipath.md``); the
source spreads its messages so that the bits sent on each leg follow the legs' rates — a
deficit round robin: every message of ``b`` bits credits each leg with ``b · w_leg / Σw`` and
debits the leg it used by ``b``. Over any run of messages the bits sent on a leg differ from
its share by at most one message.

A leg whose first link holds too little key for the message is skipped for this message (the
next-ranked leg goes instead), so a leg that falls behind its reserved rate never holds the
session back while another leg has key.

>>> from kms.forwarding import ForwardingRule
>>> legs = (ForwardingRule("s", None, "b", 3000, "leg-1"), ForwardingRule("s", None, "c", 1000, "leg-2"))
>>> credits: dict[str, float] = {}
>>> used = []
>>> for _ in range(8):
...     leg = rank_legs(legs, credits)[0]
...     credits = account(legs, credits, leg, 256)
...     used.append(leg.leg)
>>> used.count("leg-1"), used.count("leg-2")
(6, 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kms.forwarding import ForwardingRule


def leg_weight(rule: ForwardingRule) -> float:
    """A leg's share: its reserved rate (``virt_bandwidth``); 1 when the controller set none."""
    return float(rule.bandwidth) if rule.bandwidth and rule.bandwidth > 0 else 1.0


def _key(rule: ForwardingRule) -> str:
    return rule.leg or rule.next_hop or ""


def rank_legs(legs: Sequence[ForwardingRule], credits: Mapping[str, float]
              ) -> list[ForwardingRule]:
    """The legs in the order the next message should try them (most owed first)."""
    total = sum(leg_weight(rule) for rule in legs) or 1.0
    return sorted(legs, key=lambda rule: (-(credits.get(_key(rule), 0.0) + leg_weight(rule) / total),
                                          _key(rule)))


def account(legs: Sequence[ForwardingRule], credits: Mapping[str, float],
            used: ForwardingRule, bits: int) -> dict[str, float]:
    """The credits after a message of ``bits`` went over ``used``."""
    total = sum(leg_weight(rule) for rule in legs) or 1.0
    out = {_key(rule): credits.get(_key(rule), 0.0) + bits * leg_weight(rule) / total
           for rule in legs}
    out[_key(used)] = out.get(_key(used), 0.0) - bits
    return out
