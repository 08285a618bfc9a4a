"""Triangular solves with a banded Cholesky factor in LAPACK's upper storage, many right-hand sides.

LAPACK's ``dpbtrf`` factors a symmetric positive definite band matrix ``N = U^T U`` held in
upper banded storage ``ab (kd + 1, n)``: ``ab[kd + i - j, j] = U[i, j]`` for
``j - kd <= i <= j``. In Fortran order that entry sits at ``kd + i + kd * j`` of the
flat buffer: within the band the buffer is a dense matrix with leading dimension ``kd``
(what LAPACK's own blocked band routines use). So the diagonal block of rows and columns
``[s, s + kd)`` (upper triangular) and the block of rows ``[s - kd, s)`` x columns
``[s, s + kd)`` (lower triangular, the band's end) are contiguous ``(kd, kd)``
Fortran matrices, views without a copy. ``dtbtrs`` solves one right-hand side at a time
(a pass over the whole factor each); :func:`solve_transposed` walks the factor once in
``kd``-row blocks with BLAS-3 calls, the same result to rounding.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.linalg import blas


def solve_transposed(U: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``Z = U^-T rhs`` for ``U`` an upper banded Cholesky factor ``(kd + 1, n)`` in Fortran
    order (``dpbtrf``'s output) and ``rhs (n, m)``; returns ``Z (n, m)`` in Fortran order.

    Forward substitution by blocks of ``kd`` rows: ``Z_b = U_bb^-T (rhs_b - U_(b-1)b^T Z_(b-1))``
    (``dtrmm`` with the lower-triangular coupling block, ``dtrsm`` with the diagonal block).
    """
    if not U.flags.f_contiguous:
        raise ValueError("the banded factor must be in Fortran order (dpbtrf's output)")
    kd = U.shape[0] - 1
    n, m = rhs.shape
    if U.shape[1] != n:
        raise ValueError(f"factor of {U.shape[1]} unknowns for {n} right-hand-side rows")
    flat = U.reshape(-1, order="F")
    if kd == 0:
        return np.asfortranarray(rhs / flat[:, None])
    full = n // kd
    rest = n - full * kd
    # blocks[b] is block b of Z transposed: blocks[b].T a Fortran (kd, m) matrix for BLAS.
    blocks = np.empty((full, m, kd))
    blocks.transpose(0, 2, 1)[...] = rhs[: full * kd].reshape(full, kd, m)
    previous = None
    for b in range(full):  # loop over blocks of kd rows (n / kd of them), BLAS-3 inside
        base = b * kd * (kd + 1)  # flat offset of U[b kd - kd, b kd]
        current = blocks[b].T
        if previous is not None:
            coupling = flat[base : base + kd * kd].reshape(kd, kd, order="F")  # lower triangle valid
            current -= blas.dtrmm(1.0, coupling, previous, lower=1, trans_a=1)
        diagonal = flat[base + kd : base + kd + kd * kd].reshape(kd, kd, order="F")  # upper triangle valid
        blas.dtrsm(1.0, diagonal, current, lower=0, trans_a=1, overwrite_b=1)
        previous = current
    result = np.empty((n, m), order="F")
    result[: full * kd] = blocks.transpose(0, 2, 1).reshape(full * kd, m)
    if rest:  # the last rows: a partial block, through small dense copies
        start = full * kd
        base = start * (kd + 1)
        tail = np.array(rhs[start:], dtype=np.float64, order="F")
        if previous is not None:
            coupling = flat[base : base + kd * rest].reshape(kd, rest, order="F")
            tail -= np.tril(coupling).T @ previous
        diagonal = np.triu(as_strided(flat[base + kd :], shape=(rest, rest), strides=(flat.itemsize, kd * flat.itemsize)))
        result[start:] = blas.dtrsm(1.0, np.asfortranarray(diagonal), tail, lower=0, trans_a=1)
    return result
