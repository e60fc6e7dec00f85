"""The address-to-function lowering that every kernel relies on (Numba internals)."""

import numpy as np
from numba import cfunc, njit

from paramest.kernels.fnptr import RHS_SIG_C128, RHS_SIG_F64, as_rhs


def _model(t, y, p, dydt):
    dydt[0] = p[0] * y[0] + t
    dydt[1] = y[0] * y[1]


@njit
def _call(address, t, y, p):
    fun = as_rhs(address, y)
    out = np.empty_like(y)
    fun(t, y, p, out)
    return out


def test_real_and_complex_addresses_call_the_model():
    real = cfunc(RHS_SIG_F64)(_model)
    cplx = cfunc(RHS_SIG_C128)(_model)
    y = np.array([2.0, 3.0])
    p = np.array([0.5])
    np.testing.assert_array_equal(_call(real.address, 1.0, y, p), [2.0, 6.0])
    out = _call(cplx.address, 1.0, y + 1j * np.array([1e-30, 0.0]), p + 0j)
    np.testing.assert_allclose(out.real, [2.0, 6.0])
    np.testing.assert_allclose(out.imag / 1e-30, [0.5, 3.0])
