"""The agent's asyncssh handlers skip describing packets while packet logging is off."""

from __future__ import annotations

import asyncssh
from asyncssh.logging import SSHLogger

from qkd_agent.ssh_server import quiet_packet_logging


class FakeHandler:
    """An asyncssh packet handler's two logging methods, recording their calls."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, int, int | None, bytes, str]] = []

    def log_sent_packet(self, pkttype: int, pktid: int | None, packet: bytes,
                        note: str = "") -> None:
        self.logged.append(("sent", pkttype, pktid, packet, note))

    def log_received_packet(self, pkttype: int, pktid: int | None, packet: bytes,
                            note: str = "") -> None:
        self.logged.append(("received", pkttype, pktid, packet, note))


def test_nothing_is_described_below_debug_level_3():
    level = SSHLogger._debug_level
    try:
        for below in (1, 2):
            asyncssh.set_debug_level(below)
            handler = FakeHandler()
            quiet_packet_logging(handler)
            handler.log_sent_packet(94, 7, b"data")
            handler.log_received_packet(94, 8, b"data", "skipped")
            assert handler.logged == []
    finally:
        asyncssh.set_debug_level(level)


def test_debug_level_3_logs_every_packet_as_asyncssh_does():
    level = SSHLogger._debug_level
    handler = FakeHandler()
    quiet_packet_logging(handler)  # wrapped while logging is off…
    try:
        asyncssh.set_debug_level(3)  # …and switched on afterwards: the wrappers ask each time
        handler.log_sent_packet(94, 7, b"data")
        handler.log_received_packet(94, 8, b"data", "skipped")
    finally:
        asyncssh.set_debug_level(level)
    assert handler.logged == [("sent", 94, 7, b"data", ""),
                              ("received", 94, 8, b"data", "skipped")]
