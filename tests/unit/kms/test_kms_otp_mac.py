"""OTP and the one-time Poly1305 MAC of the relay."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kms.otp_mac import MAC_KEY_BYTES, mac_tag, verify_tag, xor_bytes


@given(st.binary(min_size=1, max_size=64))
def test_otp_round_trip(data):
    pad = os.urandom(len(data))
    assert xor_bytes(xor_bytes(data, pad), pad) == data


def test_otp_rejects_short_pad():
    with pytest.raises(ValueError):
        xor_bytes(b"abc", b"ab")


def test_tag_is_rfc_8439_poly1305():
    """RFC 8439 §2.5.2 test vector: the relay's MAC is standard Poly1305."""
    key = bytes.fromhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
    msg = b"Cryptographic Forum Research Group"
    assert mac_tag(msg, key).hex() == "a8061dc1305136c6c22b8baf0c0127a9"


def test_key_must_be_32_bytes():
    with pytest.raises(ValueError):
        mac_tag(b"x", bytes(MAC_KEY_BYTES - 1))


@settings(deadline=None)   # a loaded CI machine
@given(st.binary(max_size=100), st.integers(0, 99), st.integers(1, 255))
def test_any_single_byte_change_breaks_the_tag(msg, pos, flip):
    key = os.urandom(32)
    tag = mac_tag(msg, key)
    assert verify_tag(msg, key, tag)
    if msg:
        i = pos % len(msg)
        tampered = msg[:i] + bytes([msg[i] ^ flip]) + msg[i + 1:]
        assert not verify_tag(tampered, key, tag)
    assert not verify_tag(msg + b"\x00", key, tag)
    assert not verify_tag(msg, os.urandom(32), tag)


def test_trailing_zero_bytes_are_not_ignored():
    key = os.urandom(32)
    assert mac_tag(b"ab", key) != mac_tag(b"ab\x00", key)
