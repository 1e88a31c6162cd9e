"""The one exception root of qkdn. Each layer subclasses it in its own errors module and the
edges (NETCONF rpc-error, HTTP + ETSI JSON, ETSI 004 status) translate it in one place each."""

from __future__ import annotations


class QkdnError(Exception):
    """Root of every error qkdn raises on purpose."""


class ConfigError(QkdnError):
    """A configuration or topology file is invalid; the message says where and why."""
