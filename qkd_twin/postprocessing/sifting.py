"""Basis sifting of BB84 raw detections."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SiftedKey:
    """Both sides' bits where the bases agreed."""

    alice: np.ndarray
    bob: np.ndarray
    detections: int

    @property
    def size(self) -> int:
        return int(self.alice.size)


def sift(alice_bits: np.ndarray, alice_bases: np.ndarray, bob_bits: np.ndarray,
         bob_bases: np.ndarray) -> SiftedKey:
    """Keep the detections where Alice's and Bob's bases (announced publicly) agree."""
    keep = alice_bases == bob_bases
    return SiftedKey(alice=alice_bits[keep], bob=bob_bits[keep], detections=int(alice_bits.size))
