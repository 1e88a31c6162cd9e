"""Key-rate reservations per physical link: which session holds how much of which link."""

from __future__ import annotations

from collections.abc import Mapping

from sdn_controller.identifiers import LinkId, SessionId


class ReservationLedger:
    """The rates admission control has promised, per session and per link (bit/s).

    Per-link totals and users are kept up to date on every change, so reading them costs
    O(links), never O(sessions)."""

    def __init__(self) -> None:
        self._by_session: dict[SessionId, dict[LinkId, int]] = {}
        self._totals: dict[LinkId, int] = {}
        self._users: dict[LinkId, set[SessionId]] = {}

    def reserve(self, session_id: SessionId, link_rates: Mapping[LinkId, int]) -> None:
        """Record (replacing any earlier record of the session) the rates it holds."""
        if any(rate < 0 for rate in link_rates.values()):
            raise ValueError("a reservation is never negative")
        self.release(session_id)
        rates = {link: int(r) for link, r in link_rates.items() if r}
        self._by_session[session_id] = rates
        for link, rate in rates.items():
            self._totals[link] = self._totals.get(link, 0) + rate
            self._users.setdefault(link, set()).add(session_id)

    def release(self, session_id: SessionId) -> dict[LinkId, int]:
        """Forget the session's reservations; return what it held."""
        rates = self._by_session.pop(session_id, {})
        for link, rate in rates.items():
            self._totals[link] -= rate
            self._users[link].discard(session_id)
            if not self._users[link]:
                del self._users[link], self._totals[link]
        return rates

    def held_by(self, session_id: SessionId) -> dict[LinkId, int]:
        return dict(self._by_session.get(session_id, {}))

    def reserved_by_link(self) -> dict[LinkId, int]:
        return dict(self._totals)

    def sessions_by_link(self) -> dict[LinkId, frozenset[SessionId]]:
        return {link: frozenset(users) for link, users in self._users.items()}

    def sessions_on(self, link: LinkId) -> frozenset[SessionId]:
        return frozenset(self._users.get(link, ()))

    def session_counts(self) -> dict[LinkId, int]:
        return {link: len(users) for link, users in self._users.items()}

    def __len__(self) -> int:
        return len(self._by_session)
