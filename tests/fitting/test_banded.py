"""The blocked forward solve with a banded Cholesky factor (fitting.banded) against LAPACK's dtbtrs."""

import numpy as np
import pytest
from scipy.linalg import lapack

from fitting.banded import solve_lower


def _factor(n, kd, rng):
    ab = rng.standard_normal((kd + 1, n)) * 0.3
    ab[0] = np.abs(ab[0]) + kd + 1.0  # diagonally dominant: positive definite
    L, info = lapack.dpbtrf(np.asfortranarray(ab), lower=1)
    assert info == 0
    return L


@pytest.mark.parametrize("n, kd, m", [(600, 30, 21), (613, 30, 5), (20, 30, 3), (30, 30, 1), (31, 30, 2), (50, 0, 4), (252, 126, 1)])
def test_solve_lower_equals_lapack(n, kd, m):
    rng = np.random.default_rng(n + kd + m)
    L = _factor(n, kd, rng)
    rhs = rng.standard_normal((n, m))
    expected, info = lapack.dtbtrs(L, rhs, uplo="L", trans="N")
    assert info == 0
    result = solve_lower(L, rhs)
    assert result.flags.f_contiguous and result.shape == (n, m)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    in_place = np.asfortranarray(rhs.copy())
    assert solve_lower(L, in_place, out=in_place) is in_place  # the right-hand sides overwritten
    np.testing.assert_array_equal(in_place, result)
    # and it solves the system: L Z = rhs, L from its banded storage
    dense = np.zeros((n, n))
    for offset in range(kd + 1):
        j = np.arange(n - offset)
        dense[j + offset, j] = L[offset, j]
    np.testing.assert_allclose(dense @ result, rhs, atol=1e-10)


def test_solve_lower_in_float32_matches_lapack_stbtrs():
    rng = np.random.default_rng(3)
    L64 = _factor(613, 30, rng)
    L, info = lapack.spbtrf(np.asfortranarray(_factor_matrix(L64).astype(np.float32)), lower=1)
    assert info == 0
    rhs = rng.standard_normal((613, 7)).astype(np.float32)
    expected, info = lapack.stbtrs(L, rhs, uplo="L", trans="N")
    result = solve_lower(L, rhs)
    assert result.dtype == np.float32 and result.flags.f_contiguous
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def _factor_matrix(L):
    """The banded storage of ``L L^T`` (lower), from a banded factor ``L (kd + 1, n)``."""
    kd, n = L.shape[0] - 1, L.shape[1]
    dense = np.zeros((n, n))
    for offset in range(kd + 1):
        j = np.arange(n - offset)
        dense[j + offset, j] = L[offset, j]
    product = dense @ dense.T
    return np.array([np.concatenate([np.diagonal(product, -offset), np.zeros(offset)]) for offset in range(kd + 1)])


def test_solve_lower_refuses_a_c_ordered_factor():
    L = np.ascontiguousarray(_factor(40, 5, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="Fortran"):
        solve_lower(L, np.ones((40, 2)))
