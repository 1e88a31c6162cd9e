"""Which asyncio event loop an agent runs on: uvloop's when it is installed, asyncio's otherwise.

Every request an agent serves wakes its loop once: the socket becomes readable, asyncssh
decrypts the packet and hands the bytes to the session, the reply is encrypted and written.
With the standard loop, the wake-up (``selectors``), the callbacks and the transport's
``recv``/``send`` run in Python; uvloop (libuv, in C) does the same work in C. asyncssh and
everything above it are unchanged, so the choice is invisible to clients.

:class:`EventLoopKind` is the setting (``AgentConfig.event_loop``, ``qkdn agent
--event-loop``, ``QKDN_AGENT_EVENT_LOOP``): ``auto`` (the default) takes uvloop if it can be
imported, ``uvloop`` requires it, ``asyncio`` never uses it.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
from collections.abc import Callable
from types import ModuleType

from qkdn.errors import ConfigError


class EventLoopKind(enum.StrEnum):
    AUTO = "auto"
    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


try:   # imported with the agent (a node process preloads it before forking: nothing left to
    # import once the node runs, tests/integration/test_node_preload.py)
    _UVLOOP: ModuleType | None = importlib.import_module("uvloop")
except ImportError:
    _UVLOOP = None


def _uvloop() -> ModuleType | None:
    return _UVLOOP


def event_loop_kind(value: str | EventLoopKind) -> EventLoopKind:
    """The setting from its text; :class:`~qkdn.errors.ConfigError` for an unknown one.

    >>> event_loop_kind("UVLOOP")
    <EventLoopKind.UVLOOP: 'uvloop'>
    """
    try:
        return EventLoopKind(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(k.value for k in EventLoopKind)
        raise ConfigError(f"event loop {value!r}: expected one of {choices}") from None


def resolve_event_loop(kind: str | EventLoopKind = EventLoopKind.AUTO) -> EventLoopKind:
    """The loop an agent with setting ``kind`` runs on (``auto`` resolved): ``uvloop`` or
    ``asyncio``. Raises :class:`~qkdn.errors.ConfigError` for ``uvloop`` when it is not
    installed."""
    kind = event_loop_kind(kind)
    if kind is EventLoopKind.ASYNCIO:
        return kind
    if _uvloop() is not None:
        return EventLoopKind.UVLOOP
    if kind is EventLoopKind.UVLOOP:
        raise ConfigError("event loop uvloop: the uvloop package is not installed")
    return EventLoopKind.ASYNCIO


def loop_factory(kind: str | EventLoopKind = EventLoopKind.AUTO
                 ) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making a new event loop of the resolved ``kind`` (for
    ``asyncio.Runner(loop_factory=...)`` or a loop run in a thread)."""
    if resolve_event_loop(kind) is EventLoopKind.UVLOOP:
        uvloop = _uvloop()
        assert uvloop is not None
        return uvloop.new_event_loop
    return asyncio.new_event_loop
