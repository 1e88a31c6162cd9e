"""The agent's choice of event loop (qkd_agent.event_loop): no sockets."""

from __future__ import annotations

import asyncio

import pytest

from qkd_agent import event_loop
from qkd_agent.agent import AgentConfig
from qkd_agent.event_loop import EventLoopKind, event_loop_kind, loop_factory, resolve_event_loop
from qkdn.errors import ConfigError

uvloop = pytest.importorskip("uvloop")


def test_names_are_read_case_blind_and_unknown_ones_refused():
    assert event_loop_kind(" Auto ") is EventLoopKind.AUTO
    assert event_loop_kind("asyncio") is EventLoopKind.ASYNCIO
    with pytest.raises(ConfigError, match="expected one of auto, uvloop, asyncio"):
        event_loop_kind("trio")
    with pytest.raises(ConfigError):
        AgentConfig(event_loop="tokio")


def test_auto_takes_uvloop_when_installed_and_asyncio_otherwise(monkeypatch):
    assert resolve_event_loop("auto") is EventLoopKind.UVLOOP
    assert resolve_event_loop("asyncio") is EventLoopKind.ASYNCIO
    monkeypatch.setattr(event_loop, "_uvloop", lambda: None)   # as if not installed
    assert resolve_event_loop("auto") is EventLoopKind.ASYNCIO
    with pytest.raises(ConfigError, match="not installed"):
        resolve_event_loop("uvloop")


@pytest.mark.parametrize(("kind", "loop_type"), [("uvloop", "uvloop.Loop"),
                                                 ("asyncio", "asyncio.unix_events")])
def test_factory_makes_a_loop_of_that_kind(kind: str, loop_type: str):
    loop = loop_factory(kind)()
    try:
        assert loop_type in f"{type(loop).__module__}.{type(loop).__name__}"
        assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
    finally:
        loop.close()
