"""Emulated raw detections of a decoy-state BB84 link (the quantum part of protocol mode).

Only the signal pulses that Bob detects are drawn (decoy pulses enter through the model's
single-photon estimates), which keeps a block cheap whatever the clock:

* each detection is a dark-count-only click with probability ``Y0 exp(-eta mu) / Q_mu``
  (random bit), otherwise a signal click;
* Alice's bit and basis and Bob's basis are uniform bits, the Z basis chosen with probability
  ``p_z = (1 + sqrt(2q - 1)) / 2`` so that the sifting factor is ``q``;
* a signal click is flipped with the misalignment probability ``e_d``, except on pulses an
  intercept-resend eavesdropper attacked (fraction ``p``): she measures in a random basis and
  resends what she saw, so when her basis differs from Alice's, Bob's bit is random.

All randomness comes from the ``rng`` argument (seeded from the link's secret, per block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qkd_twin.physics import LinkParameters, gain, total_transmittance


@dataclass(frozen=True)
class RawDetections:
    """What both parties hold after the quantum transmission of one block."""

    alice_bits: np.ndarray
    alice_bases: np.ndarray
    bob_bits: np.ndarray
    bob_bases: np.ndarray

    @property
    def size(self) -> int:
        return int(self.alice_bits.size)


def z_basis_probability(q: float) -> float:
    """Basis bias giving sifting factor q (p_z^2 + p_x^2 = q); 1/2 for q <= 1/2."""
    return (1.0 + math.sqrt(max(0.0, 2.0 * q - 1.0))) / 2.0


def detections_for_sifted(params: LinkParameters, sifted_bits: int) -> int:
    """Mean number of detections that yield ``sifted_bits`` after sifting."""
    return round(sifted_bits / params.q)


def emulate_detections(params: LinkParameters, mu: float, detections: int,
                       rng: np.random.Generator) -> RawDetections:
    """Draw ``detections`` detection events of signal pulses of intensity ``mu``."""
    n = int(detections)
    eta = total_transmittance(params)
    q_mu = gain(params, mu)
    dark_only = params.y0 * math.exp(-eta * mu) / q_mu
    p_z = z_basis_probability(params.q)
    alice_bits = rng.integers(0, 2, n, dtype=np.uint8)
    alice_bases = (rng.random(n) >= p_z).astype(np.uint8)
    bob_bases = (rng.random(n) >= p_z).astype(np.uint8)
    dark = rng.random(n) < dark_only
    attacked = rng.random(n) < params.eavesdrop_fraction
    eve_bases = rng.integers(0, 2, n, dtype=np.uint8)
    scrambled = dark | (attacked & (eve_bases != alice_bases)) | (alice_bases != bob_bases)
    flips = (rng.random(n) < params.e_d).astype(np.uint8)
    random_bits = rng.integers(0, 2, n, dtype=np.uint8)
    bob_bits = np.where(scrambled, random_bits, alice_bits ^ flips).astype(np.uint8)
    return RawDetections(alice_bits, alice_bases, bob_bits, bob_bases)
