"""RFC 6242 message framing: pure, incremental decoders and encoders for both framings.

* base:1.0 — end-of-message: every message is followed by ``]]>]]>``.
* base:1.1 — chunked: ``\\n#<size>\\n<bytes>`` chunks, the message ends with ``\\n##\\n``.

The session starts in end-of-message framing (the hellos) and switches to chunked framing when
both peers advertise base:1.1. The decoders never hold more than ``max_message_size`` bytes of
one message: a bigger message raises :class:`MessageTooBig`; a chunk header that is not
``\\n#<1..4294967295>\\n`` raises :class:`FramingError`. Both are fatal for the session (the
peer and the server no longer agree where messages start).
"""

from __future__ import annotations

from enum import StrEnum

from qkdn.errors import QkdnError

#: End-of-message delimiter of base:1.0 framing.
EOM = b"]]>]]>"
#: End-of-chunks marker of base:1.1 framing.
END_OF_CHUNKS = b"\n##\n"
#: RFC 6242 §4.2: chunk-size is 1..4294967295.
MAX_CHUNK_SIZE = 4294967295
#: Default upper bound for one message (both framings).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: A chunk header is at most "\n#" + 10 digits + "\n".
_MAX_HEADER = 2 + 10 + 1


class Framing(StrEnum):
    """The two RFC 6242 framings, named by the base capability that selects them."""

    END_OF_MESSAGE = "base:1.0"
    CHUNKED = "base:1.1"


class FramingError(QkdnError):
    """The byte stream violates RFC 6242; the session must be closed."""


class MessageTooBig(FramingError):
    """One message exceeds the configured maximum size."""


def encode_message(message: bytes, framing: Framing, chunk_size: int = 0) -> bytes:
    """Frame one complete message for the wire; chunked framing cuts it into chunks of
    ``chunk_size`` bytes (0 = one chunk)."""
    if framing is Framing.END_OF_MESSAGE:
        return message + EOM
    if not message:
        raise ValueError("a chunked message needs at least one byte")
    if chunk_size <= 0 or len(message) <= chunk_size:
        return b"\n#%d\n%s%s" % (len(message), message, END_OF_CHUNKS)
    view = memoryview(message)
    parts: list[bytes | memoryview] = []
    for start in range(0, len(message), chunk_size):
        piece = view[start : start + chunk_size]
        parts.append(b"\n#%d\n" % len(piece))
        parts.append(piece)
    parts.append(END_OF_CHUNKS)
    return b"".join(parts)


class EndOfMessageDecoder:
    """Incremental base:1.0 decoder: ``feed(bytes)`` returns the complete messages so far."""

    framing = Framing.END_OF_MESSAGE

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max = max_message_size
        self._scan_from = 0

    def feed(self, data: bytes, limit: int | None = None) -> list[bytes]:
        """Append ``data``; return the messages it completes (at most ``limit``, the rest of
        the bytes staying buffered for :meth:`take_remainder` or the next call)."""
        self._buffer += data
        messages: list[bytes] = []
        while limit is None or len(messages) < limit:
            index = self._buffer.find(EOM, self._scan_from)
            if index < 0:
                # the delimiter may straddle two reads: rescan its possible start next time
                self._scan_from = max(0, len(self._buffer) - len(EOM) + 1)
                if len(self._buffer) > self._max + len(EOM):
                    raise MessageTooBig(f"message exceeds {self._max} bytes")
                return messages
            if index > self._max:
                raise MessageTooBig(f"message exceeds {self._max} bytes")
            messages.append(bytes(self._buffer[:index]))
            del self._buffer[: index + len(EOM)]
            self._scan_from = 0
        return messages

    def take_remainder(self) -> bytes:
        """Bytes received after the last complete message (handed over on a framing switch)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scan_from = 0
        return rest

    @property
    def pending(self) -> int:
        """Number of buffered bytes that do not yet form a message."""
        return len(self._buffer)


class ChunkedDecoder:
    """Incremental base:1.1 decoder (RFC 6242 §4.2)."""

    framing = Framing.CHUNKED

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._message = bytearray()
        self._max = max_message_size
        self._chunk_left = 0  # bytes of the current chunk still to read
        self._in_message = False

    def feed(self, data: bytes) -> list[bytes]:
        if not self._buffer and not self._in_message:
            whole = self._whole_message(data)
            if whole is not None:
                return [whole]
        self._buffer += data
        messages: list[bytes] = []
        while True:
            if self._chunk_left:
                take = min(self._chunk_left, len(self._buffer))
                if not take:
                    return messages
                self._message += self._buffer[:take]
                del self._buffer[:take]
                self._chunk_left -= take
                continue
            header = self._parse_header()
            if header is None:
                return messages
            if header == 0:  # end of chunks
                if not self._in_message:
                    raise FramingError("end-of-chunks marker before any chunk")
                messages.append(bytes(self._message))
                self._message.clear()
                self._in_message = False
            else:
                if len(self._message) + header > self._max:
                    raise MessageTooBig(f"message exceeds {self._max} bytes")
                self._chunk_left = header
                self._in_message = True

    def _whole_message(self, data: bytes) -> bytes | None:
        """The message when ``data`` is exactly one message of one chunk (what a client
        usually sends per read), taken without copying it through the buffers; None for
        anything else, which the general path decodes (and rejects) byte for byte alike."""
        if data[:2] != b"\n#" or data[-4:] != END_OF_CHUNKS:
            return None
        end = data.find(b"\n", 2, _MAX_HEADER)
        digits = data[2:end]
        if end < 0 or not digits.isdigit() or digits[:1] == b"0":
            return None
        size = int(digits)
        if (size > self._max or size > MAX_CHUNK_SIZE
                or end + 1 + size + len(END_OF_CHUNKS) != len(data)):
            return None
        return data[end + 1:end + 1 + size]

    def _parse_header(self) -> int | None:
        """Consume one chunk header; its size, 0 for end-of-chunks, None if incomplete."""
        buf = self._buffer
        if len(buf) < 3:
            if not b"\n#".startswith(bytes(buf)):
                raise FramingError(f"bad chunk header {bytes(buf)!r}")
            return None
        if buf[0:2] != b"\n#":
            raise FramingError(f"bad chunk header {bytes(buf[:_MAX_HEADER])!r}")
        if buf[2:3] == b"#":
            if len(buf) < 4:
                return None
            if buf[3:4] != b"\n":
                raise FramingError("bad end-of-chunks marker")
            del buf[:4]
            return 0
        end = buf.find(b"\n", 2, _MAX_HEADER)
        if end < 0:
            if len(buf) >= _MAX_HEADER or not bytes(buf[2:]).isdigit():
                raise FramingError(f"bad chunk header {bytes(buf[:_MAX_HEADER])!r}")
            return None
        digits = bytes(buf[2:end])
        if not digits.isdigit() or digits.startswith(b"0"):
            raise FramingError(f"bad chunk size {digits!r}")
        size = int(digits)
        if size > MAX_CHUNK_SIZE:
            raise FramingError(f"chunk size {size} exceeds {MAX_CHUNK_SIZE}")
        del buf[: end + 1]
        return size

    def take_remainder(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    @property
    def pending(self) -> int:
        return len(self._buffer) + len(self._message)


Decoder = EndOfMessageDecoder | ChunkedDecoder


def make_decoder(framing: Framing, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Decoder:
    """A fresh decoder for ``framing``."""
    if framing is Framing.END_OF_MESSAGE:
        return EndOfMessageDecoder(max_message_size)
    return ChunkedDecoder(max_message_size)
