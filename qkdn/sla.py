"""SLA profiles: what a user's sessions may ask for. One definition, shared by the topology
files (which declare them) and the controller's user database (which stores and enforces
them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from qkdn.errors import ConfigError


class InvalidSlaError(ConfigError, ValueError):
    """An SLA profile value is out of range; the message names the profile and the field."""


class FallbackPolicy(str, enum.Enum):
    """What a session may fall back to when QKD key is short (for the hybrid work)."""

    QKD_ONLY = "qkd-only"
    HYBRID = "hybrid"
    PQC_FALLBACK = "pqc-fallback"


@dataclass(frozen=True)
class SlaProfile:
    """What a user's sessions may ask for. Rates in bit/s, timeout in seconds."""

    name: str
    max_bps: int
    min_bps: int = 0
    max_priority: int = 0
    max_sessions: int = 16
    idle_timeout_s: int = 60
    allow_lower_rate: bool = True
    fallback: FallbackPolicy = FallbackPolicy.QKD_ONLY

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidSlaError("an SLA profile needs a name")
        if self.max_bps <= 0:
            raise InvalidSlaError(f"SLA {self.name}: max_bps must be positive")
        if not 0 <= self.min_bps <= self.max_bps:
            raise InvalidSlaError(f"SLA {self.name}: min_bps must be in [0, max_bps]")
        if self.max_priority < 0 or self.max_sessions < 1 or self.idle_timeout_s < 1:
            raise InvalidSlaError(f"SLA {self.name}: max_priority >= 0, max_sessions >= 1 "
                                  "and idle_timeout_s >= 1 are required")
        try:
            object.__setattr__(self, "fallback", FallbackPolicy(self.fallback))
        except ValueError:
            raise InvalidSlaError(
                f"SLA {self.name}: fallback must be one of "
                f"{', '.join(p.value for p in FallbackPolicy)}") from None
