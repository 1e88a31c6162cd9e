"""One block of post-processing: estimate → correct → verify → amplify.

The final key length follows the GLLP / decoy-state bound with the finite-size margins of
``parameter_estimation`` (see docs/twin.md, "Key length"):

``l = floor(n * Δ1 * (1 - h2(e1_U)) - leak_EC - TAG_BITS - 2 log2(1/eps_PA))``

where ``n`` is the number of reconciled bits, ``Δ1`` the fraction of them that came from
single-photon pulses (from the decoy estimates; 1 for an ideal single-photon source), and
``e1_U`` the phase-error bound derived from the measured QBER upper bound ``E_U`` by the
caller-supplied ``phase_error`` map (identity for single photons).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from qkd_twin.physics import BB84_QBER_LIMIT, h2
from qkd_twin.postprocessing.cascade import CascadeConfig, reconcile
from qkd_twin.postprocessing.parameter_estimation import estimate_qber, qber_upper_bound
from qkd_twin.postprocessing.privacy_amplification import ToeplitzHasher, toeplitz_seed
from qkd_twin.postprocessing.sifting import SiftedKey
from qkd_twin.postprocessing.verification import TAG_BITS, hash_key, keys_match


@dataclass(frozen=True)
class SecurityParameters:
    """Thresholds and failure probabilities of the post-processing."""

    sample_fraction: float = 0.1     # share of the sifted key disclosed for the QBER estimate
    min_sample: int = 256
    qber_abort: float = BB84_QBER_LIMIT
    eps_pe: float = 1e-10            # parameter estimation failure probability
    eps_pa: float = 1e-10            # privacy amplification (leftover hash) security


class BlockStatus(str, Enum):
    """How a block ended."""

    OK = "ok"
    ABORTED_QBER = "aborted-qber"                    # sample QBER above the threshold
    ABORTED_VERIFICATION = "aborted-verification"    # tags differ after error correction
    NO_KEY = "no-key"                                # too short / too noisy for a positive key


@dataclass(frozen=True)
class BlockResult:
    """Outcome of one block; keys are empty unless ``status`` is OK."""

    status: BlockStatus
    alice_key: np.ndarray = field(repr=False)
    bob_key: np.ndarray = field(repr=False)
    sifted_bits: int
    sample_qber: float
    measured_qber: float
    qber_upper: float
    leaked_ec_bits: int
    reconciled_bits: int
    errors_corrected: int
    final_bits: int
    ec_seconds: float              # CPU seconds of this thread (per-core throughput)
    pa_seconds: float

    @property
    def ok(self) -> bool:
        return self.status is BlockStatus.OK


_EMPTY = np.zeros(0, dtype=np.uint8)
# defaults of run_block and evaluate_postprocessing (frozen values, shared)
DEFAULT_SECURITY = SecurityParameters()
DEFAULT_CASCADE = CascadeConfig()


def final_key_length(n: int, qber_upper: float, leaked_ec: int, security: SecurityParameters,
                     single_photon_fraction: float = 1.0,
                     phase_error: Callable[[float], float] = lambda e: e) -> int:
    """Secure key length after privacy amplification (0 when nothing is left)."""
    e1 = min(0.5, phase_error(qber_upper))
    raw = (n * single_photon_fraction * (1.0 - h2(e1)) - leaked_ec - TAG_BITS
           - 2.0 * math.log2(1.0 / security.eps_pa))
    return max(0, min(n, math.floor(raw)))


def run_block(sifted: SiftedKey, rng: np.random.Generator, *,
              security: SecurityParameters = DEFAULT_SECURITY,
              single_photon_fraction: float = 1.0,
              phase_error: Callable[[float], float] = lambda e: e,
              cascade: CascadeConfig = DEFAULT_CASCADE,
              hash_parties: tuple[bool, bool] = (True, True)) -> BlockResult:
    """Run the whole post-processing of one sifted block for both parties.

    ``rng`` is the shared (public-channel) randomness of the block: sample positions,
    permutations, hash point and Toeplitz seed. Both link ends seed it alike.
    """
    def result(status: BlockStatus, **kw) -> BlockResult:
        base: dict[str, Any] = {
            "alice_key": _EMPTY, "bob_key": _EMPTY, "sifted_bits": sifted.size, "sample_qber": 1.0,
            "measured_qber": 1.0, "qber_upper": 1.0, "leaked_ec_bits": 0, "reconciled_bits": 0,
            "errors_corrected": 0, "final_bits": 0, "ec_seconds": 0.0, "pa_seconds": 0.0}
        base.update(kw)
        return BlockResult(status=status, **base)

    if sifted.size < 2 * security.min_sample:
        return result(BlockStatus.NO_KEY)
    sample = estimate_qber(sifted.alice, sifted.bob, security.sample_fraction, rng,
                           security.min_sample)
    if sample.qber > security.qber_abort:
        return result(BlockStatus.ABORTED_QBER, sample_qber=sample.qber)
    alice = sifted.alice[sample.keep]
    bob = sifted.bob[sample.keep]
    started = time.thread_time()
    ec = reconcile(alice, bob, max(sample.qber, 1e-3), rng, cascade)
    point = hash_key(rng)
    verified = keys_match(alice, ec.corrected, point)
    ec_seconds = time.thread_time() - started
    measured = (sample.sample_errors + ec.errors_corrected) / sifted.size
    upper = qber_upper_bound(sample.sample_errors + ec.errors_corrected, sifted.size,
                             security.eps_pe)
    common = {"sample_qber": sample.qber, "measured_qber": measured, "qber_upper": upper,
                  "leaked_ec_bits": ec.leaked_bits, "reconciled_bits": int(alice.size),
                  "errors_corrected": ec.errors_corrected,
                  "ec_seconds": ec_seconds}
    if not verified:
        return result(BlockStatus.ABORTED_VERIFICATION, **common)
    length = final_key_length(alice.size, upper, ec.leaked_bits, security,
                              single_photon_fraction, phase_error)
    if length == 0:
        return result(BlockStatus.NO_KEY, **common)
    started = time.thread_time()
    seed = toeplitz_seed(alice.size, length, rng)
    hasher = ToeplitzHasher(alice.size, length, seed)
    alice_key = hasher(alice) if hash_parties[0] else _EMPTY
    bob_key = hasher(ec.corrected) if hash_parties[1] else _EMPTY
    return result(BlockStatus.OK, alice_key=alice_key, bob_key=bob_key, final_bits=length,
                  pa_seconds=time.thread_time() - started, **common)
