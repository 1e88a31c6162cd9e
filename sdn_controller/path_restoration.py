"""Path-restoration policy of an SLA profile: what the controller does with a session whose
path fails (ETSI GS QKD 018's restoration type and hold-off time).

``AUTOMATIC``: the controller reroutes the session itself; ``MANUAL``: an orchestrator
restores it (north-bound RPC ``restore_svc_link``). ``hold_off_ms`` is the delay an
orchestrator may expect before an automatic restoration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sdn_controller.errors import InvalidEntryError


class RestorationType(str, enum.Enum):
    """Identity names of ``qkdn-sdn-access:PATH-RESTORATION-TYPES``."""

    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


@dataclass(frozen=True)
class PathRestoration:
    kind: RestorationType = RestorationType.AUTOMATIC
    hold_off_ms: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", RestorationType(self.kind))
        except ValueError:
            raise InvalidEntryError(f"unknown path restoration type {self.kind!r}") from None
        if self.hold_off_ms < 0:
            raise InvalidEntryError("hold_off_time must not be negative")


#: The policy of an SLA profile that names none.
DEFAULT_RESTORATION = PathRestoration()
