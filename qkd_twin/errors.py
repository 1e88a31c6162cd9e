"""Errors raised by the digital twin; all derive from :class:`qkdn.errors.QkdnError`."""

from __future__ import annotations

from qkdn.errors import QkdnError


class TwinError(QkdnError):
    """Root of the twin's errors."""


class InvalidLinkParameters(TwinError):
    """A link parameter is outside its physical range (the message names it)."""


class UnknownPreset(TwinError):
    """No parameter preset of that name."""


class PostprocessingError(TwinError):
    """Post-processing was asked for something impossible (empty frame, bad QBER...)."""


class FaultFileError(TwinError):
    """A fault file is unreadable or malformed."""
