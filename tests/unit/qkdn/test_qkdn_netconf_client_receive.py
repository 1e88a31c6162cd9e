"""qkdn.netconf_client.receive: base:1.1 unframing for ncclient sessions (no sockets)."""

from __future__ import annotations

import io

import pytest
from ncclient.transport.parser import DefaultXMLParser
from ncclient.transport.session import NetconfBase

from qkd_agent.framing import Framing, FramingError, encode_message
from qkdn.netconf_client import receive


class _Session:
    """The parts of an ncclient session that ``receive`` touches."""

    def __init__(self, base: int = NetconfBase.BASE_11) -> None:
        self._base = base
        self._buffer = io.BytesIO()
        self._message_list: list[str] = []
        self.dispatched: list[str] = []
        self.parser = DefaultXMLParser(self)

    def _dispatch_message(self, raw: str) -> None:
        self.dispatched.append(raw)


MESSAGES = [('<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1">'
            "<ok/></rpc-reply>"),
            "<notification>" + "ä€😀" * 3000 + "</notification>",
            "<rpc-reply message-id='2'><data/></rpc-reply>"]


@pytest.mark.parametrize("read_size", [1, 7, 4096, 10**6])
def test_messages_are_dispatched_whole_in_order_whatever_the_reads(read_size):
    wire = b"".join(encode_message(m.encode(), Framing.CHUNKED, chunk_size=1000)
                    for m in MESSAGES)   # multi-byte characters cut by chunks and reads
    session = _Session()
    for start in range(0, len(wire), read_size):
        receive(session, wire[start:start + read_size])
    assert session.dispatched == MESSAGES


def test_bytes_left_after_the_hello_come_first():
    session = _Session()
    first, second = (encode_message(m.encode(), Framing.CHUNKED) for m in MESSAGES[:2])
    session._buffer.write(first[:10])        # ncclient's base:1.0 parser kept these
    receive(session, first[10:] + second)
    assert session.dispatched == MESSAGES[:2]
    assert session._buffer.getvalue() == b""


def test_base_1_0_stays_with_ncclients_parser():
    session = _Session(NetconfBase.BASE_10)
    receive(session, MESSAGES[0].encode() + b"]]>]]>")
    assert session.dispatched == [MESSAGES[0]]
    assert not hasattr(session, "_qkdn_chunks")


@pytest.mark.parametrize("wire", [b"\n#0\nx", b"\n#12x\n", b"hello", b"\n##\n"])
def test_bad_framing_raises(wire):
    with pytest.raises(FramingError):
        receive(_Session(), wire)
