"""The agent's SSH connections drop asyncssh's empty SSH_MSG_IGNORE unless the cipher is CBC."""

from __future__ import annotations

from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE

from qkd_agent.ssh_server import is_cbc_cipher, skip_cbc_countermeasure


class FakeConnection:
    """The two things :func:`skip_cbc_countermeasure` uses of an asyncssh connection; its
    ``send_packet`` sends the countermeasure first, as asyncssh 2.x does."""

    def __init__(self, cipher: str) -> None:
        self.cipher = cipher
        self.sent: list[tuple[int, tuple[bytes, ...]]] = []

    def get_extra_info(self, name: str) -> str | None:
        return self.cipher if name == "send_cipher" else None

    def send_packet(self, pkttype: int, *args: bytes, handler: object = None) -> None:
        if pkttype > 20:   # asyncssh: "pkttype > MSG_KEX_LAST" once encryption is on
            self.send_packet(MSG_IGNORE, b"\0\0\0\0")
        self.sent.append((pkttype, args))


def test_aead_and_ctr_ciphers_send_one_packet_per_data_packet():
    for cipher in ("aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr"):
        conn = FakeConnection(cipher)
        skip_cbc_countermeasure(conn)
        conn.send_packet(MSG_CHANNEL_DATA, b"reply")
        assert conn.sent == [(MSG_CHANNEL_DATA, (b"reply",))], cipher


def test_cbc_keeps_the_countermeasure():
    conn = FakeConnection("aes128-cbc")
    skip_cbc_countermeasure(conn)
    conn.send_packet(MSG_CHANNEL_DATA, b"reply")
    assert conn.sent == [(MSG_IGNORE, (b"\0\0\0\0",)), (MSG_CHANNEL_DATA, (b"reply",))]


def test_an_ignore_message_with_a_payload_is_still_sent():
    conn = FakeConnection("aes128-gcm@openssh.com")
    skip_cbc_countermeasure(conn)
    conn.send_packet(MSG_IGNORE, b"\0\0\0\x03abc")
    assert conn.sent[-1] == (MSG_IGNORE, (b"\0\0\0\x03abc",))


def test_other_packets_are_sent_before_any_cipher_is_negotiated():
    conn = FakeConnection(None)  # type: ignore[arg-type]
    skip_cbc_countermeasure(conn)
    conn.send_packet(5, b"service")
    assert conn.sent == [(5, (b"service",))]


def test_is_cbc_cipher():
    assert is_cbc_cipher("3des-cbc") and is_cbc_cipher("seed-cbc@ssh.com")
    assert not is_cbc_cipher("aes128-ctr") and not is_cbc_cipher("")
