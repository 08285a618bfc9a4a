"""Forward solves with a banded Cholesky factor in LAPACK's lower storage, many right-hand sides.

LAPACK's ``dpbtrf`` factors a symmetric positive definite band matrix ``N = L L^T`` held in
lower banded storage ``ab (kd + 1, n)``: ``ab[i - j, j] = L[i, j]`` for
``j <= i <= j + kd``. In Fortran order that entry sits at ``i + kd * j`` of the flat
buffer: within the band the buffer is a dense matrix with leading dimension ``kd`` (what
LAPACK's own blocked band routines use). So the diagonal block of rows and columns
``[s, s + kd)`` (lower triangular) and the block of rows ``[s, s + kd)`` x columns
``[s - kd, s)`` (upper triangular: the band's edge) are contiguous ``(kd, kd)`` Fortran
matrices, views without a copy. ``dtbtrs`` solves one right-hand side at a time (a pass
over the whole factor each); :func:`solve_lower` walks the factor once in ``kd``-row
blocks with BLAS-3 calls, the same result to rounding.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.linalg import blas


def solve_lower(L: np.ndarray, rhs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``Z = L^-1 rhs`` for ``L`` a lower banded Cholesky factor ``(kd + 1, n)`` in Fortran
    order (``dpbtrf(..., lower=1)``'s output) and ``rhs (n, m)``; returns ``Z (n, m)`` in
    Fortran order, written into ``out`` when given (an ``(n, m)`` Fortran array, which
    may be ``rhs`` itself: a solver that calls this every iteration then touches no new
    memory, which costs page faults on large arrays).

    Forward substitution by blocks of ``kd`` rows: ``Z_b = L_bb^-1 (rhs_b - L_b(b-1) Z_(b-1))``
    (``dtrmm`` with the upper-triangular coupling block, ``dtrsm`` with the diagonal block).
    """
    if not L.flags.f_contiguous:
        raise ValueError("the banded factor must be in Fortran order (dpbtrf's output)")
    kd = L.shape[0] - 1
    n, m = rhs.shape
    if L.shape[1] != n:
        raise ValueError(f"factor of {L.shape[1]} unknowns for {n} right-hand-side rows")
    flat = L.reshape(-1, order="F")
    trmm, trsm = (blas.strmm, blas.strsm) if L.dtype == np.float32 else (blas.dtrmm, blas.dtrsm)
    result = np.empty((n, m), dtype=L.dtype, order="F") if out is None else out
    if result.shape != (n, m) or not result.flags.f_contiguous:
        raise ValueError(f"out must be a Fortran ({n}, {m}) array")
    if kd == 0:
        result[...] = rhs / flat[:, None]
        return result
    full = n // kd
    rest = n - full * kd
    step = kd * (kd + 1)  # flat offset from one block's diagonal to the next one's
    # Block b of Z is rows [b kd, (b + 1) kd) of the Fortran result: a (kd, m) matrix
    # with leading dimension n, copied to a contiguous one for BLAS and back.
    tail = np.array(rhs[full * kd :], dtype=L.dtype, order="F")
    if rhs is not result:
        result[: full * kd] = rhs[: full * kd]
    previous = None
    for b in range(full):  # loop over blocks of kd rows (n / kd of them), BLAS-3 inside
        current = np.asfortranarray(result[b * kd : (b + 1) * kd])
        if previous is not None:
            base = (b - 1) * step + kd  # L[b kd, (b - 1) kd]
            coupling = flat[base : base + kd * kd].reshape(kd, kd, order="F")  # upper triangle valid
            current -= trmm(1.0, coupling, previous, lower=0)
        diagonal = flat[b * step : b * step + kd * kd].reshape(kd, kd, order="F")  # lower triangle valid
        trsm(1.0, diagonal, current, lower=1, overwrite_b=1)
        result[b * kd : (b + 1) * kd] = current
        previous = current
    if rest:  # the last rows: a partial block, through small dense copies
        start = full * kd
        strides = (flat.itemsize, kd * flat.itemsize)
        if previous is not None:
            coupling = as_strided(flat[(full - 1) * step + kd :], shape=(rest, kd), strides=strides)
            tail -= np.triu(coupling) @ previous
        diagonal = np.tril(as_strided(flat[full * step :], shape=(rest, rest), strides=strides))
        result[start:] = trsm(1.0, np.asfortranarray(diagonal), tail, lower=1)
    return result
