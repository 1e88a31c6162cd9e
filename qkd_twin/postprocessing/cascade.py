"""Cascade error correction (Brassard & Salvail 1993) with the usual improvements.

Improvements over the original protocol, after Martinez-Mateo, Pacher, Peev, Ciurana, Martin,
"Demystifying the information reconciliation protocol Cascade" (2014):

* block sizes are powers of two: ``k1 = 2**round(log2(alpha / Q))`` with ``alpha = 0.8`` (tuned
  here, see docs/twin.md), ``k2 = 4 k1``, ``k3 = 16 k1`` and ``n / 2`` for all later passes, so
  later passes cost only two parities each unless they find an error (the third, intermediate
  pass brings the residual frame error rate of 10^4-bit frames from ~5e-3 to < 5e-4);
* many passes (default 10): the cheap ``n/2`` passes drive the residual frame error rate down
  (what is left is caught by verification);
* parallel, vectorised binary searches: all odd-parity blocks of one pass are bisected at once
  (they are disjoint), and the cascade back to earlier passes is done in batches the same way;
* public pass permutations are fixed (derived from ``permutation_seed``) and reused from frame
  to frame, as deployed Cascade implementations do: a permutation of ``n`` elements is the
  cached permutation of the next power of two with the elements ``>= n`` dropped (still a
  uniformly random permutation), which removes the cost of drawing ten permutations per frame.

Both parties are emulated in one process, so Alice's parities are computed from Alice's bits
and Bob's from Bob's; every parity Alice discloses is counted in ``leaked_bits`` (top-level
block parities plus one bit per bisection step). Bob's string is corrected in place of a copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qkd_twin.errors import PostprocessingError

#: Tuned multiplier of 1/QBER for the first block size.
FIRST_BLOCK_ALPHA = 0.8


@dataclass(frozen=True)
class CascadeConfig:
    """Block-size schedule of the improved Cascade."""

    passes: int = 10
    alpha: float = FIRST_BLOCK_ALPHA
    block_multipliers: tuple[int, ...] = (1, 4, 16)   # k_i = k1 * m_i, then n/2
    permutation_seed: int = 0x5EED_CA5C
    reuse_permutations: bool = True   # False: fresh permutations from ``rng`` every frame


@dataclass(frozen=True)
class ReconciliationResult:
    """Bob's corrected string and what the exchange disclosed."""

    corrected: np.ndarray
    leaked_bits: int
    errors_corrected: int
    passes: int
    batches: int


def block_sizes(n: int, qber: float, config: CascadeConfig = CascadeConfig()) -> list[int]:
    """Block size of every pass for a frame of ``n`` bits at estimated ``qber``."""
    q = min(max(qber, 1e-4), 0.25)
    k1 = 2 ** max(2, round(math.log2(config.alpha / q)))
    half = max(2, n // 2)
    sizes = [min(k1 * m, half) for m in config.block_multipliers]
    sizes += [half] * max(0, config.passes - len(sizes))
    return sizes[: config.passes]


@lru_cache(maxsize=64)
def _base_permutation(size: int, pass_index: int, seed: int) -> np.ndarray:
    perm = np.random.default_rng([seed, size, pass_index]).permutation(size)
    perm.setflags(write=False)
    return perm


def pass_permutation(n: int, pass_index: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(perm, rank_before): the public permutation of ``n`` bits for a pass, and for each
    position of the cached base permutation the number of kept elements before it (so that
    ``rank_before[base_position[j]]`` is bit ``j``'s position in ``perm``)."""
    size = 1 << max(10, (n - 1).bit_length())
    base = _base_permutation(size, pass_index, seed)
    keep = base < n
    rank_before = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(keep, out=rank_before[1:])
    return base[keep], rank_before


@lru_cache(maxsize=64)
def _base_inverse(size: int, pass_index: int, seed: int) -> np.ndarray:
    base = _base_permutation(size, pass_index, seed)
    inverse = np.empty(size, dtype=np.int64)
    inverse[base] = np.arange(size)
    inverse.setflags(write=False)
    return inverse


def _range_parity(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (cum[hi] - cum[lo]) & 1


def reconcile(alice: np.ndarray, bob: np.ndarray, qber: float,
              rng: np.random.Generator | None = None,
              config: CascadeConfig = CascadeConfig()) -> ReconciliationResult:
    """Correct ``bob`` towards ``alice`` with Cascade.

    Args:
        alice, bob: equal-length uint8 arrays of 0/1 (the sifted keys).
        qber: the estimated error rate (from parameter estimation) that sizes the blocks.
        rng: shared public randomness for fresh pass permutations; only used when
            ``config.reuse_permutations`` is False.
    """
    n = int(alice.size)
    if n < 2 or bob.size != n:
        raise PostprocessingError("Cascade needs two equal frames of at least 2 bits")
    bob = bob.astype(np.uint8, copy=True)
    alice = alice.astype(np.uint8, copy=False)
    sizes = block_sizes(n, qber, config)
    perms: list[np.ndarray] = []
    locate: list = []                     # bit indices -> positions in each pass's order
    alice_cums: list[np.ndarray] = []
    flags: list[np.ndarray] = []          # block parity differs (Alice vs Bob), per pass
    leaked = 0
    corrected = 0
    batches = 0
    cum_b = np.zeros(n + 1, dtype=np.int32)
    for p, k in enumerate(sizes):
        if p == 0:
            perm = np.arange(n)
            locate.append(lambda idx: idx)
        elif not config.reuse_permutations:
            if rng is None:
                raise PostprocessingError("fresh Cascade permutations need an rng")
            perm = rng.permutation(n)
            pos = np.empty(n, dtype=np.int64)
            pos[perm] = np.arange(n)
            locate.append(lambda idx, pos=pos: pos[idx])
        else:
            perm, rank_before = pass_permutation(n, p, config.permutation_seed)
            inverse = _base_inverse(rank_before.size - 1, p, config.permutation_seed)
            locate.append(lambda idx, r=rank_before, inv=inverse: r[inv[idx]])
        cum_a = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(alice[perm], out=cum_a[1:])
        nblocks = -(-n // k)
        starts = np.arange(nblocks, dtype=np.int64) * k
        ends = np.minimum(starts + k, n)
        np.cumsum(bob[perm], out=cum_b[1:])
        flag = (_range_parity(cum_a, starts, ends) != _range_parity(cum_b, starts, ends))
        leaked += nblocks
        perms.append(perm)
        alice_cums.append(cum_a)
        flags.append(flag)
        while True:
            pending = next((j for j in range(p + 1) if flags[j].any()), None)
            if pending is None:
                break
            batches += 1
            kj, perm_j, cum_aj = sizes[pending], perms[pending], alice_cums[pending]
            np.cumsum(bob[perm_j], out=cum_b[1:])
            odd = np.flatnonzero(flags[pending])
            lo = odd * kj
            hi = np.minimum(lo + kj, n)
            while True:
                active = (hi - lo) > 1
                steps = int(active.sum())
                if steps == 0:
                    break
                leaked += steps
                mid = (lo + hi) // 2
                left_differs = (_range_parity(cum_aj, lo, mid)
                                != _range_parity(cum_b, lo, mid))
                hi = np.where(active & left_differs, mid, hi)
                lo = np.where(active & ~left_differs, mid, lo)
            fixed = perm_j[lo]
            bob[fixed] ^= 1
            corrected += int(fixed.size)
            for j in range(p + 1):
                hits = np.bincount(locate[j](fixed) // sizes[j], minlength=flags[j].size)
                flags[j] ^= (hits & 1).astype(bool)
    return ReconciliationResult(corrected=bob, leaked_bits=leaked, errors_corrected=corrected,
                                passes=len(sizes), batches=batches)
