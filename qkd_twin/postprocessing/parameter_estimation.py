"""Parameter estimation: QBER from a disclosed random sample, and finite-size bounds.

A random subset of the sifted key (positions from shared randomness) is announced and
discarded; its error rate decides whether the block is aborted and sizes Cascade's blocks.
After error correction the exact number of errors in the rest is known, so the QBER used to
size privacy amplification is counted over the whole sifted block and then raised to the
one-sided Clopper-Pearson upper confidence bound at failure probability ``eps_pe`` (exact for
binomially distributed errors, much tighter than Hoeffding at QBERs of a few percent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qkd_twin.postprocessing.beta_quantile import beta_upper_quantile


@dataclass(frozen=True)
class SampleEstimate:
    """Result of the disclosed sample."""

    qber: float
    sample_size: int
    sample_errors: int
    keep: np.ndarray  # boolean mask of the bits kept for the key


def estimate_qber(alice: np.ndarray, bob: np.ndarray, fraction: float,
                  rng: np.random.Generator, min_sample: int = 256) -> SampleEstimate:
    """Disclose ``fraction`` (at least ``min_sample``) of the bits and count the errors."""
    n = int(alice.size)
    k = min(n, max(min_sample, round(fraction * n)))
    chosen = rng.choice(n, size=k, replace=False) if k else np.zeros(0, dtype=np.int64)
    errors = int(np.count_nonzero(alice[chosen] != bob[chosen]))
    keep = np.ones(n, dtype=bool)
    keep[chosen] = False
    return SampleEstimate(qber=errors / k if k else 0.0, sample_size=k, sample_errors=errors,
                          keep=keep)


def qber_upper_bound(errors: int, total: int, eps: float) -> float:
    """Clopper-Pearson upper confidence bound on the error rate (fails with probability eps)."""
    if total <= 0:
        return 0.5
    if errors >= total:
        return 0.5
    return min(0.5, beta_upper_quantile(errors + 1, total - errors, eps))
