"""Rate mode's key: AES-256-CTR under one key per link, counter block = block index ‖ i —
each block computable alone, in any order, the same at both ends."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from qkd_twin.module import LinkEmulator, LinkRole, ModuleConfig, ModuleMode
from qkd_twin.physics import preset

SEED = bytes(range(32))


def emulator(role: LinkRole = LinkRole.TRANSMITTER, link: str = "l-ab") -> LinkEmulator:
    return LinkEmulator(ModuleConfig(link, role, preset("reference", 80), SEED, ModuleMode.RATE))


def reference_key(link: str, block: int, nbytes: int) -> bytes:
    h = hashlib.sha256()
    for part in (b"qkdn-twin", SEED, link.encode(), b"rate-key"):
        h.update(len(part).to_bytes(4, "big") + part)
    nonce = block.to_bytes(8, "big") + bytes(8)
    encryptor = Cipher(algorithms.AES(h.digest()), modes.CTR(nonce)).encryptor()
    return encryptor.update(bytes(nbytes)) + encryptor.finalize()


def test_rate_key_is_aes_ctr_with_the_block_as_nonce():
    e = emulator()
    for block, nbytes in [(0, 1), (7, 16), (1_764_000_000 * 4, 10_003), (5, 70_000)]:
        assert e._rate_key(block, nbytes) == reference_key("l-ab", block, nbytes)


def test_rate_key_does_not_depend_on_order_role_or_earlier_blocks():
    a, b = emulator(LinkRole.TRANSMITTER), emulator(LinkRole.RECEIVER)
    forward = [a._rate_key(n, 10_000) for n in range(100, 110)]
    backward = [b._rate_key(n, 10_000) for n in reversed(range(100, 110))][::-1]
    assert forward == backward
    assert len(set(forward)) == 10                      # no block repeats another's bytes
    assert emulator(link="l-other")._rate_key(100, 64) != forward[0][:64]
