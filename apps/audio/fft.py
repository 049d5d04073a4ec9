"""The discrete Fourier transform three ways: the O(n^2) definition, the recursive Cooley-Tukey
FFT that the seed report derives (chapter 1.5.2), and the fast library path.

For a vector F = (F_0, ..., F_{n-1}) the DFT is

    F^_j = sum_{k=0}^{n-1} F_k w^(jk),   w = exp(-2 i pi / n),   j = 0 .. n-1          (1)

that is F^_j = P(w^j) for the polynomial P(X) = sum_k F_k X^k. Split P by the parity of k:

    P(X) = P_even(X^2) + X P_odd(X^2),
    P_even(X) = sum_k F_{2k} X^k,   P_odd(X) = sum_k F_{2k+1} X^k                        (2)

so F^_j = P_even(w^(2j)) + w^j P_odd(w^(2j)). The values P_even(w^(2j)) for j = 0 .. n/2 - 1
are the DFT of the even samples (of length n/2, with root w^2), and likewise for the odd
ones; since w^(j + n/2) = -w^j and w^(2(j + n/2)) = w^(2j), the second half comes for free:

    F^_j         = E_j + w^j O_j                                                          (3)
    F^_{j + n/2} = E_j - w^j O_j,     j = 0 .. n/2 - 1,  E = DFT(F_even), O = DFT(F_odd)

and the recursion stops at n = 1, where F^_0 = F_0. Each level costs O(n) and there are
log2(n) levels: O(n log n) instead of O(n^2). ``fft_radix2`` is that recursion, written for
study and checked against ``numpy.fft.fft``; the feature pipeline uses ``numpy.fft.rfft`` (or
``cupy.fft``), which computes the same thing much faster.
"""
from __future__ import annotations

import numpy as np


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def next_power_of_two(n: int) -> int:
    """The smallest power of two >= n (pad a signal to it before ``fft_radix2``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return 1 << (int(n) - 1).bit_length()


def dft_naive(x):
    """Equation (1) as one matrix product, O(n^2): the definition, to check the fast versions.

    Shapes: x (..., n) -> (..., n) complex128.
    """
    x = np.asarray(x, dtype=np.complex128)
    n = x.shape[-1]
    k = np.arange(n)
    W = np.exp(-2j * np.pi * np.outer(k, k) / n)  # W[j, k] = w^(jk)
    return x @ W.T


def fft_radix2(x):
    """Recursive radix-2 Cooley-Tukey FFT along the last axis, equations (2) and (3).

    Shapes: x (..., n) real or complex, n a power of two -> (..., n) complex128, equal to
    ``numpy.fft.fft(x, axis=-1)`` up to rounding (~1e-12 relative for n = 4096).
    Raises ValueError when n is not a power of two (pad with ``next_power_of_two``).
    """
    x = np.asarray(x, dtype=np.complex128)
    n = x.shape[-1]
    if not is_power_of_two(n):
        raise ValueError(f"fft_radix2 needs a length that is a power of two, got {n} "
                         f"(zero-pad to {next_power_of_two(max(n, 1))})")
    if n == 1:
        return x.copy()  # F^_0 = F_0
    even = fft_radix2(x[..., 0::2])  # E_j = P_even(w^(2j))                       (2)
    odd = fft_radix2(x[..., 1::2])   # O_j = P_odd(w^(2j))
    twiddle = np.exp(-2j * np.pi * np.arange(n // 2) / n)  # w^j
    t = twiddle * odd
    return np.concatenate([even + t, even - t], axis=-1)  # (3)


def ifft_radix2(X):
    """Inverse of ``fft_radix2``: x = conj(FFT(conj(X))) / n."""
    X = np.asarray(X, dtype=np.complex128)
    return np.conj(fft_radix2(np.conj(X))) / X.shape[-1]


__all__ = ["dft_naive", "fft_radix2", "ifft_radix2", "is_power_of_two", "next_power_of_two"]
