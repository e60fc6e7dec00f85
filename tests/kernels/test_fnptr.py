"""The direct call of a cfunc by address that every kernel relies on (Numba's C-wrapper
ABI)."""

import numpy as np
from numba import cfunc, njit

from paramest.kernels.fnptr import (
    JAC_SIG_F64,
    RHS_SIG_C128,
    RHS_SIG_C128_T,
    RHS_SIG_F64,
    call_model,
)


def _model(t, y, p, dydt):
    dydt[0] = p[0] * y[0] + t
    dydt[1] = y[0] * y[1]


@njit
def _call(address, t, y, p):
    out = np.empty_like(y)
    call_model(address, t, y, p, out)
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


@njit
def _call_jac(address, t, y, p):
    out = np.empty((y.shape[0], y.shape[0]))
    call_model(address, t, y, p, out)
    return out


def _jac(t, y, p, J):
    J[0, 0] = p[0]
    J[0, 1] = 0.0
    J[1, 0] = y[1]
    J[1, 1] = y[0] + t


def test_complex_time_and_jacobian_addresses():
    complex_time = cfunc(RHS_SIG_C128_T)(_model)
    y = np.array([2.0, 3.0], dtype=np.complex128)
    out = _call(complex_time.address, 1.0 + 1e-30j, y, np.array([0.5 + 0j]))
    np.testing.assert_allclose(out.imag / 1e-30, [1.0, 0.0])  # df/dt
    jac = cfunc(JAC_SIG_F64)(_jac)
    np.testing.assert_array_equal(
        _call_jac(jac.address, 1.0, np.array([2.0, 3.0]), np.array([0.5])),
        [[0.5, 0.0], [3.0, 3.0]],
    )
