"""Key-rate reservations per physical link: which session holds how much of which link."""

from __future__ import annotations

from collections.abc import Mapping

from sdn_controller.identifiers import LinkId, SessionId


class ReservationLedger:
    """The rates admission control has promised, per session and per link (bit/s)."""

    def __init__(self) -> None:
        self._by_session: dict[SessionId, dict[LinkId, int]] = {}

    def reserve(self, session_id: SessionId, link_rates: Mapping[LinkId, int]) -> None:
        """Record (replacing any earlier record of the session) the rates it holds."""
        if any(rate < 0 for rate in link_rates.values()):
            raise ValueError("a reservation is never negative")
        self._by_session[session_id] = {link: int(r) for link, r in link_rates.items() if r}

    def release(self, session_id: SessionId) -> dict[LinkId, int]:
        """Forget the session's reservations; return what it held."""
        return self._by_session.pop(session_id, {})

    def held_by(self, session_id: SessionId) -> dict[LinkId, int]:
        return dict(self._by_session.get(session_id, {}))

    def reserved_by_link(self) -> dict[LinkId, int]:
        totals: dict[LinkId, int] = {}
        for rates in self._by_session.values():
            for link, rate in rates.items():
                totals[link] = totals.get(link, 0) + rate
        return totals

    def sessions_by_link(self) -> dict[LinkId, frozenset[SessionId]]:
        users: dict[LinkId, set[SessionId]] = {}
        for session, rates in self._by_session.items():
            for link in rates:
                users.setdefault(link, set()).add(session)
        return {link: frozenset(s) for link, s in users.items()}

    def session_counts(self) -> dict[LinkId, int]:
        return {link: len(s) for link, s in self.sessions_by_link().items()}

    def __len__(self) -> int:
        return len(self._by_session)
