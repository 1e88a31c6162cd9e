"""OTP and Wegman–Carter MAC maths."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kms.otp_mac import PRIME, mac_tag, poly_hash, verify_tag, xor_bytes


@given(st.binary(min_size=1, max_size=64))
def test_otp_round_trip(data):
    pad = os.urandom(len(data))
    assert xor_bytes(xor_bytes(data, pad), pad) == data


def test_otp_rejects_short_pad():
    with pytest.raises(ValueError):
        xor_bytes(b"abc", b"ab")


def test_poly_hash_matches_explicit_polynomial():
    r = 123456789
    msg = bytes(range(20))  # chunks: 15 bytes, 5 bytes, then the length
    m1 = int.from_bytes(msg[:15] + b"\x01", "big")
    m2 = int.from_bytes(msg[15:] + b"\x01", "big")
    expected = (m1 * pow(r, 3, PRIME) + m2 * r * r + 20 * r) % PRIME
    assert poly_hash(msg, r) == expected


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


def test_trailing_zero_bytes_are_not_ignored():
    key = os.urandom(32)
    assert mac_tag(b"ab", key) != mac_tag(b"ab\x00", key)


def _poly_hash_one_chunk_per_step(message: bytes, r: int) -> int:
    """The definition, literally (kms.otp_mac's docstring): the reference for poly_hash."""
    from kms.otp_mac import PRIME
    acc = 0
    for start in range(0, len(message), 15):
        chunk = int.from_bytes(message[start:start + 15] + b"\x01", "big")
        acc = ((acc + chunk) * r) % PRIME
    return ((acc + len(message)) * r) % PRIME


def test_poly_hash_equals_the_one_chunk_per_step_definition():
    import os

    from kms.otp_mac import PRIME, poly_hash
    for length in list(range(200)) + [150_001]:
        message = os.urandom(length)
        r = int.from_bytes(os.urandom(16), "big") % PRIME
        assert poly_hash(message, r) == _poly_hash_one_chunk_per_step(message, r)
    assert poly_hash(b"\x00" * 29, 0) == 0
