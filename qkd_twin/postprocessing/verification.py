"""Key verification with an ε-almost universal polynomial hash over GF(2^61 - 1).

The reconciled key is cut into 56-bit words ``w_1..w_L`` and hashed as the polynomial
``h_r(w) = sum w_i r^(L-i+1) mod p`` with a secret random point ``r``; two different keys
collide with probability at most ``L / p`` (about 1e-15 for 10^5-bit frames). Alice sends her
61-bit tag, Bob compares; the tag length is counted as leaked information.
"""

from __future__ import annotations

import numpy as np

#: Mersenne prime 2^61 - 1.
PRIME = (1 << 61) - 1
#: Bits disclosed by one tag.
TAG_BITS = 61
_WORD_BYTES = 7


def hash_key(rng: np.random.Generator) -> int:
    """A fresh hash point r in [1, p)."""
    return int(rng.integers(1, PRIME, dtype=np.int64))


def polynomial_tag(bits: np.ndarray, point: int) -> int:
    """Tag of a bit string (uint8 0/1) at ``point``; the length is hashed too."""
    packed = np.packbits(bits.astype(np.uint8))
    pad = (-packed.size) % _WORD_BYTES
    if pad:
        packed = np.concatenate([packed, np.zeros(pad, dtype=np.uint8)])
    words = packed.reshape(-1, _WORD_BYTES)
    values = np.zeros(words.shape[0], dtype=np.uint64)
    for column in range(_WORD_BYTES):
        values = (values << np.uint64(8)) | words[:, column].astype(np.uint64)
    acc = int(bits.size) % PRIME
    for word in values.tolist():
        acc = (acc * point + word) % PRIME
    return (acc * point) % PRIME


def keys_match(alice: np.ndarray, bob: np.ndarray, point: int) -> bool:
    """Bob's check of Alice's tag."""
    return alice.size == bob.size and polynomial_tag(alice, point) == polynomial_tag(bob, point)
