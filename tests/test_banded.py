"""The blocked triangular solve with a banded Cholesky factor (fitting.banded) against LAPACK's dtbtrs."""

import numpy as np
import pytest
from scipy.linalg import lapack

from fitting.banded import solve_transposed


def _factor(n, kd, rng):
    ab = rng.standard_normal((kd + 1, n)) * 0.3
    ab[-1] = np.abs(ab[-1]) + kd + 1.0  # diagonally dominant: positive definite
    U, info = lapack.dpbtrf(np.asfortranarray(ab), lower=0)
    assert info == 0
    return U


@pytest.mark.parametrize("n, kd, m", [(600, 30, 21), (613, 30, 5), (20, 30, 3), (30, 30, 1), (31, 30, 2), (50, 0, 4), (252, 126, 1)])
def test_solve_transposed_equals_lapack(n, kd, m):
    rng = np.random.default_rng(n + kd + m)
    U = _factor(n, kd, rng)
    rhs = rng.standard_normal((n, m))
    expected, info = lapack.dtbtrs(U, rhs, uplo="U", trans="T")
    assert info == 0
    result = solve_transposed(U, rhs)
    assert result.flags.f_contiguous and result.shape == (n, m)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    # and it solves the system: U^T Z = rhs, U from its banded storage
    dense = np.zeros((n, n))
    for offset in range(kd + 1):
        j = np.arange(offset, n)
        dense[j - offset, j] = U[kd - offset, j]
    np.testing.assert_allclose(dense.T @ result, rhs, atol=1e-10)


def test_solve_transposed_refuses_a_c_ordered_factor():
    U = np.ascontiguousarray(_factor(40, 5, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="Fortran"):
        solve_transposed(U, np.ones((40, 2)))
