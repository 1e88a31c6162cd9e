"""RFC 6242 framing: both decoders fed whole, byte by byte and with bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd_agent.framing import (
    ChunkedDecoder,
    EndOfMessageDecoder,
    Framing,
    FramingError,
    MessageTooBig,
    encode_message,
    make_decoder,
)


def feed_bytewise(decoder, data: bytes) -> list[bytes]:
    out: list[bytes] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    return out


def test_end_of_message_round_trip():
    wire = encode_message(b"<hello/>", Framing.END_OF_MESSAGE) + encode_message(b"<rpc/>", Framing.END_OF_MESSAGE)
    assert wire == b"<hello/>]]>]]><rpc/>]]>]]>"
    assert EndOfMessageDecoder().feed(wire) == [b"<hello/>", b"<rpc/>"]
    assert feed_bytewise(EndOfMessageDecoder(), wire) == [b"<hello/>", b"<rpc/>"]


def test_end_of_message_keeps_remainder_for_framing_switch():
    dec = EndOfMessageDecoder()
    assert dec.feed(b"<hello/>]]>]]>\n#3\nabc") == [b"<hello/>"]
    rest = dec.take_remainder()
    chunked = ChunkedDecoder()
    assert chunked.feed(rest) == []
    assert chunked.feed(b"\n##\n") == [b"abc"]


def test_chunked_encoding_matches_rfc_example():
    assert encode_message(b"<rpc/>", Framing.CHUNKED) == b"\n#6\n<rpc/>\n##\n"


def test_chunked_encoding_in_fixed_size_chunks():
    wire = encode_message(b"abcdefghij", Framing.CHUNKED, chunk_size=4)
    assert wire == b"\n#4\nabcd\n#4\nefgh\n#2\nij\n##\n"
    assert ChunkedDecoder().feed(wire) == [b"abcdefghij"]
    assert encode_message(b"abc", Framing.CHUNKED, chunk_size=4) == b"\n#3\nabc\n##\n"


def test_chunked_multi_chunk_message():
    parts = [b"<rpc", b' message-id="102"', b"/>\n"]
    wire = b"".join(b"\n#%d\n%s" % (len(p), p) for p in parts) + b"\n##\n"
    assert ChunkedDecoder().feed(wire) == [b'<rpc message-id="102"/>\n']
    assert feed_bytewise(ChunkedDecoder(), wire) == [b'<rpc message-id="102"/>\n']


@pytest.mark.parametrize(
    "wire",
    [
        b"xx",                      # no chunk header at all
        b"\n#0\nabc\n##\n",          # zero size
        b"\n#012\n",                 # leading zero
        b"\n#abc\n",                 # not digits
        b"\n#4294967296\n",          # larger than the RFC maximum
        b"\n#99999999999\n",         # header too long
        b"\n##\n",                   # end of chunks with no chunk
        b"\n#3\nabc\n#x",            # garbage after a chunk
        b"\n#3\nabc\n##x",           # bad end marker
    ],
)
def test_chunked_rejects_bad_framing(wire):
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(wire)
    with pytest.raises(FramingError):
        feed_bytewise(ChunkedDecoder(), wire)


def test_chunked_max_message_size_counts_all_chunks():
    dec = ChunkedDecoder(max_message_size=10)
    dec.feed(b"\n#6\nabcdef")
    with pytest.raises(MessageTooBig):
        dec.feed(b"\n#6\n")


def test_end_of_message_max_size_without_delimiter():
    dec = EndOfMessageDecoder(max_message_size=10)
    dec.feed(b"0123456789")
    with pytest.raises(MessageTooBig):
        dec.feed(b"0123456789")


def test_end_of_message_exact_max_size_is_accepted():
    dec = EndOfMessageDecoder(max_message_size=10)
    assert dec.feed(b"0123456789]]>]]>") == [b"0123456789"]


def test_make_decoder():
    assert isinstance(make_decoder(Framing.CHUNKED), ChunkedDecoder)
    assert isinstance(make_decoder(Framing.END_OF_MESSAGE), EndOfMessageDecoder)


messages = st.lists(st.binary(min_size=1, max_size=200).filter(lambda b: b"]]>]]>" not in b), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(messages, st.integers(min_value=1, max_value=50))
def test_any_split_decodes_the_same(msgs, step):
    for framing in Framing:
        wire = b"".join(encode_message(m, framing) for m in msgs)
        dec = make_decoder(framing)
        out: list[bytes] = []
        for i in range(0, len(wire), step):
            out += dec.feed(wire[i : i + step])
        # end-of-message framing cannot carry a message whose tail glues into ]]>]]>
        if framing is Framing.END_OF_MESSAGE and any(
            (m + b"]]>]]>").find(b"]]>]]>") != len(m) for m in msgs
        ):
            continue
        assert out == msgs
        assert dec.pending == 0


# A read that holds exactly one single-chunk message (the usual request) is decoded without
# the buffers; everything else takes the general path. Both must agree on every input.

@pytest.mark.parametrize(
    "wire",
    [
        b"\n#3\nabc\n##\n",            # the fast path
        b"\n#3\nabc\n##\n\n#1\nx\n##\n",  # a second message follows
        b"\n#3\nabc\n##",              # end marker incomplete
        b"\n#3\nabcd\n##\n",           # the size does not match
        b"\n#4\nabc\n##\n",
        b"\n#3\nabc\n#x",              # garbage after the chunk
        b"\n#3\nabc\n##x",             # bad end marker
        b"\n#012\nabc\n##\n",          # leading zero
        b"\n#\xd9\xa3\nabc\n##\n",     # a non-ASCII digit
        b"\n#4294967296\n",            # larger than the RFC maximum
        b"\n#11\n0123456789A\n##\n",   # over max_message_size (10 here)
        b"\n#10\n0123456789\n##\n",    # exactly max_message_size
    ],
)
def test_a_whole_single_chunk_read_decodes_as_byte_by_byte(wire):
    def result(feed):
        try:
            return "ok", feed()
        except MessageTooBig:
            return "too big", None
        except FramingError:
            return "framing", None

    whole = result(lambda: ChunkedDecoder(max_message_size=10).feed(wire))
    bytewise = result(lambda: feed_bytewise(ChunkedDecoder(max_message_size=10), wire))
    assert whole == bytewise


def test_the_decoder_keeps_working_after_a_whole_message():
    dec = ChunkedDecoder()
    assert dec.feed(b"\n#3\nabc\n##\n") == [b"abc"]
    assert dec.feed(b"\n#2\nde") == []
    assert dec.feed(b"\n##\n") == [b"de"]
    assert dec.feed(b"\n#1\nf\n##\n") == [b"f"]
    assert dec.pending == 0


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=40))
def test_any_bytes_after_a_header_decode_as_byte_by_byte(tail):
    for head in (b"\n#3\n", b"\n#3\nabc", b"\n#3\nabc\n##\n", b""):
        wire = head + tail
        outcomes = []
        for feed in (lambda d, w=wire: d.feed(w), lambda d, w=wire: feed_bytewise(d, w)):
            try:
                outcomes.append(("ok", feed(ChunkedDecoder(max_message_size=10))))
            except MessageTooBig:
                outcomes.append(("too big", None))
            except FramingError:
                outcomes.append(("framing", None))
        assert outcomes[0] == outcomes[1]
