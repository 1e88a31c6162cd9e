"""One-time pad and an information-theoretically secure one-time MAC for the KM relay.

MAC: **Poly1305** (RFC 8439 §2.5) used as a Wegman–Carter one-time authenticator: the 32-byte
key is ``r`` (16 bytes, clamped as RFC 8439 says) and ``s`` (16 bytes), both drawn from QKD
key material and used for one message only. The tag is ``(Σ c_i · r^(q+1−i) mod 2^130 − 5)
+ s mod 2^128`` over the message's 16-byte blocks ``c_i`` (each with a 0x01 marker byte).

Security (Bernstein, "The Poly1305-AES message-authentication code", 2005, Theorem 3.3, with
``s`` a one-time pad instead of AES output): for a uniformly random one-time key, a forger who
sees one (message, tag) pair — whatever their computing power — succeeds with probability at
most ``8·⌈L/16⌉ / 2^106`` per attempt for messages of at most ``L`` bytes (a 64 kB relay
message: 2^-91). No computational assumption is involved; what makes it one-time is that the
KM never uses a MAC key twice (every key is consumed from the link store and deleted).

Poly1305 runs in C (OpenSSL, through ``cryptography``): ~0.2 ms for a 150 kB message where the
pure-Python polynomial MAC over GF(2^127 − 1) this module held until session 5 took ~11 ms
at each end of every hop (docs/adr/0013-relay-mac-poly1305.md). The key size is unchanged
(256 bits), so a relay message still takes exactly ``|K| + 512`` bits of link key per hop.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.poly1305 import Poly1305

#: wire name of the MAC in relay messages (``"mac_alg"``, covered by the tag)
MAC_ALGORITHM = "poly1305"
MAC_KEY_BYTES = 32
TAG_BYTES = 16


def xor_bytes(data: bytes, pad: bytes) -> bytes:
    """One-time pad: ``data ⊕ pad``; the pad must be exactly as long as the data."""
    if len(data) != len(pad):
        raise ValueError("one-time pad length must equal data length")
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(len(data), "big")


def mac_tag(message: bytes, one_time_key: bytes) -> bytes:
    """The one-time Poly1305 tag of ``message`` under a 32-byte one-time key."""
    if len(one_time_key) != MAC_KEY_BYTES:
        raise ValueError(f"MAC key must be {MAC_KEY_BYTES} bytes")
    return Poly1305.generate_tag(one_time_key, message)


def verify_tag(message: bytes, one_time_key: bytes, tag: bytes) -> bool:
    """Constant-time check of ``tag``."""
    return hmac.compare_digest(mac_tag(message, one_time_key), tag)
