"""The libssh session's send path without sockets: a stand-in channel and libssh session
record what is written, so that message order and wholeness can be held exactly."""

from __future__ import annotations

import pytest

from qkdn import netconf_libssh

pytestmark = pytest.mark.skipif(not netconf_libssh.available(),
                                reason="ssh-python not installed")


class _Channel:
    """Takes at most ``window`` bytes in all and at most ``per_write`` per write call."""

    def __init__(self, window: int, per_write: int | None = None) -> None:
        self.window = window
        self.per_write = per_write
        self.out = b""

    def window_size(self) -> int:
        return self.window

    def write(self, data: bytes) -> tuple[int, int]:
        taken = min(len(data), self.window, self.per_write or len(data))
        self.out += data[:taken]
        self.window -= taken
        return 0, taken


class _Libssh:
    def blocking_flush(self, timeout_ms: int) -> int:
        return 0   # nothing held back


def _session(channel: _Channel):
    from ncclient import manager
    from ncclient.transport.session import NetconfBase

    session = netconf_libssh.session_class()(manager.make_device_handler({}, None))
    session._channel, session._libssh = channel, _Libssh()
    session._connected = session._thread_started = True
    session._base = NetconfBase.BASE_11
    return session


def _framed(message: str) -> bytes:
    data = message.encode()
    return b"\n#%d\n%s\n##\n" % (len(data), data)


def test_a_request_the_window_takes_is_written_by_the_caller():
    channel = _Channel(window=10_000)
    session = _session(channel)
    session.send("<a/>")
    assert channel.out == _framed("<a/>") and session._q.empty()


def test_nothing_is_written_into_a_message_begun():
    big, small = "<big>" + "x" * 200 + "</big>", "<small/>"
    channel = _Channel(window=100)
    session = _session(channel)
    session.send(big)                 # larger than the window: queued
    assert channel.out == b"" and not session._q.empty()
    session._send_queued()            # the session thread writes what the window takes
    assert channel.out == _framed(big)[:100] and session._unsent
    channel.window = 10_000           # the window opens: a caller must still wait
    session.send(small)
    assert channel.out == _framed(big)[:100]
    session._send_queued()
    assert channel.out == _framed(big) + _framed(small)


def test_a_message_libssh_took_only_part_of_is_finished_first():
    channel = _Channel(window=10_000, per_write=10)
    session = _session(channel)
    session.send("<first>" + "y" * 40 + "</first>")   # libssh takes 10 bytes of it
    assert channel.out == _framed("<first>" + "y" * 40 + "</first>")[:10]
    channel.per_write = None
    session.send("<second/>")                         # queued behind the rest
    assert len(channel.out) == 10
    session._send_queued()
    assert channel.out == _framed("<first>" + "y" * 40 + "</first>") + _framed("<second/>")


def test_a_closed_session_refuses_to_send():
    from ncclient.transport.errors import TransportError

    session = _session(_Channel(window=100))
    session._connected = False
    with pytest.raises(TransportError):
        session.send("<a/>")
