"""Measure the post-processing on synthetic frames (for ``qkdn twin postprocess`` and the
benchmark): Alice's random bits, Bob's through a binary symmetric channel of a given QBER,
then the real block pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qkd_twin.errors import PostprocessingError
from qkd_twin.physics import h2
from qkd_twin.postprocessing.pipeline import (
    DEFAULT_SECURITY,
    BlockResult,
    BlockStatus,
    SecurityParameters,
    run_block,
)
from qkd_twin.postprocessing.sifting import SiftedKey


@dataclass
class PostprocessingReport:
    """Totals over the frames of one run."""

    frames: int = 0
    reconciled_bits: int = 0
    shannon_bits: float = 0.0
    leaked_bits: int = 0
    final_key_bits: int = 0
    frame_errors: int = 0            # frames whose verification failed (no key)
    ec_seconds: float = 0.0
    pa_seconds: float = 0.0
    pa_bits: int = 0
    efficiencies: list[float] = field(default_factory=list)
    ec_rates: list[float] = field(default_factory=list)

    @property
    def efficiency(self) -> float | None:
        return self.leaked_bits / self.shannon_bits if self.shannon_bits > 0 else None

    @property
    def throughput_bps(self) -> float:
        return self.reconciled_bits / self.ec_seconds if self.ec_seconds > 0 else 0.0

    @property
    def pa_throughput_bps(self) -> float:
        """Input bits hashed per second, per party (each frame is hashed twice)."""
        return 2 * self.pa_bits / self.pa_seconds if self.pa_seconds > 0 else 0.0

    def add(self, result: BlockResult) -> None:
        self.frames += 1
        n = result.reconciled_bits
        if result.status is BlockStatus.ABORTED_VERIFICATION:
            self.frame_errors += 1
        if n and result.leaked_ec_bits:
            self.reconciled_bits += n
            self.leaked_bits += result.leaked_ec_bits
            shannon = n * h2(result.errors_corrected / n)
            self.shannon_bits += shannon
            if shannon > 0:
                self.efficiencies.append(result.leaked_ec_bits / shannon)
            self.ec_seconds += result.ec_seconds
            if result.ec_seconds > 0:
                self.ec_rates.append(n / result.ec_seconds)
        self.final_key_bits += result.final_bits
        if result.ok:
            self.pa_seconds += result.pa_seconds
            self.pa_bits += n

    def summary(self) -> dict:
        return {"efficiency": self.efficiency, "throughput_bps": self.throughput_bps,
                "leaked_bits": self.leaked_bits, "final_key_bits": self.final_key_bits,
                "frame_errors": self.frame_errors}


def noisy_frame(n: int, qber: float, rng: np.random.Generator) -> SiftedKey:
    """Alice's uniform bits and Bob's copy with i.i.d. errors of probability ``qber``."""
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice ^ (rng.random(n) < qber).astype(np.uint8)
    return SiftedKey(alice, bob, n)


def evaluate_postprocessing(qber: float, bits: int, *, frame_bits: int = 100_000,
                            seed: int = 1,
                            security: SecurityParameters = DEFAULT_SECURITY
                            ) -> PostprocessingReport:
    """Run the pipeline over ``bits`` sifted bits cut into frames of ``frame_bits``."""
    if not 0.0 <= qber <= 0.5:
        raise PostprocessingError("--qber is a fraction between 0 and 0.5")
    if bits < 2 * security.min_sample or frame_bits < 2 * security.min_sample:
        raise PostprocessingError(f"need at least {2 * security.min_sample} bits per frame")
    rng = np.random.default_rng(seed)
    report = PostprocessingReport()
    remaining = bits
    while remaining >= 2 * security.min_sample:
        n = min(frame_bits, remaining)
        remaining -= n
        frame = noisy_frame(n, qber, rng)
        report.add(run_block(frame, np.random.default_rng(rng.integers(2**63)),
                             security=security))
    return report
