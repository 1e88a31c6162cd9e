"""Privacy amplification by Toeplitz hashing, computed as a convolution with the FFT.

A Toeplitz matrix ``T`` (``m x n``) is fixed by ``n + m - 1`` seed bits ``t``:
``T[i, j] = t[i - j + n - 1]``. Then ``y = T x mod 2`` is the slice ``[n-1, n-1+m)`` of the
full convolution ``t * x`` reduced mod 2, which costs ``O((n+m) log(n+m))`` with a real FFT
instead of ``O(n m)``. A *circular* convolution of length ``N >= n + m - 1`` suffices: the
wrapped-around terms only land outside the wanted slice. Sums are integers below ``n``, so
rounding the float64 result is exact for the frame sizes used (checked against the direct
matrix product in the tests). numpy's FFT (pocketfft) is used, not scipy's: as fast here, and a
node process then need not import scipy (docs/twin.md, start-up).
"""

from __future__ import annotations

import numpy as np

from qkd_twin.errors import PostprocessingError


def fast_fft_length(n: int) -> int:
    """The smallest ``2^i 3^j 5^k >= n`` (a length the real FFT handles fast)."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            length = power35
            while length < n:
                length *= 2
            best = min(best, length)
            power35 *= 3
        power5 *= 5
    return best


def toeplitz_seed(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """The ``n + m - 1`` public random bits that define the hash."""
    return rng.integers(0, 2, size=n + m - 1, dtype=np.uint8)


class ToeplitzHasher:
    """One Toeplitz hash ``n -> m`` bits; the seed's spectrum is computed once and reused for
    both parties' strings."""

    def __init__(self, n: int, m: int, seed: np.ndarray) -> None:
        if m > n:
            raise PostprocessingError(f"privacy amplification cannot expand {n} bits to {m}")
        if m > 0 and seed.size != n + m - 1:
            raise PostprocessingError("Toeplitz seed must have n + m - 1 bits")
        self.n, self.m = int(n), int(m)
        self._size = fast_fft_length(max(1, n + m - 1))
        self._seed_spectrum = (np.fft.rfft(seed.astype(np.float64), self._size)
                               if m > 0 else None)

    def __call__(self, bits: np.ndarray) -> np.ndarray:
        if bits.size != self.n:
            raise PostprocessingError(f"expected {self.n} bits, got {bits.size}")
        if self.m <= 0:
            return np.zeros(0, dtype=np.uint8)
        spectrum = np.fft.rfft(bits.astype(np.float64), self._size) * self._seed_spectrum
        conv = np.fft.irfft(spectrum, self._size)[self.n - 1: self.n - 1 + self.m]
        return (np.rint(conv).astype(np.int64) & 1).astype(np.uint8)


def toeplitz_hash(bits: np.ndarray, output_bits: int, seed: np.ndarray) -> np.ndarray:
    """Compress ``bits`` (uint8 0/1, length n) to ``output_bits`` with the Toeplitz ``seed``."""
    return ToeplitzHasher(int(bits.size), int(output_bits), seed)(bits)
