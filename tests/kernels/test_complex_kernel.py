"""The integrator is dtype-generic: run with complex128 states it is the complex-step
derivative of the whole solve, with exactly the real solve's step sequence."""

import numpy as np
import pytest

import paramest as pe
from paramest.kernels import records
from paramest.kernels import status as st
from paramest.kernels.explicit import integrate, pack_tableau
from paramest.kernels.fields import model_addresses, plain_field
from paramest.kernels.tableaus import get_tableau
from tests.problems import LV_P, LV_Y0, lotka_volterra

H = 1e-30


def _run(address, y0, p, method, t_eval, rtol=1e-6, atol=1e-8, dt=0.0):
    tab, info = pack_tableau(get_tableau(method))
    dtype = np.asarray(y0).dtype
    n = len(y0)
    y = np.array(y0, dtype=dtype)
    fopts = records.float_options(0.0, t_eval[-1], rtol, dt=dt)
    iopts = records.int_options(100_000, save_every_step=False, store_dense=False)
    t_out = np.empty(len(t_eval))
    y_out = np.empty((len(t_eval), n), dtype=dtype)
    empty1, empty2 = np.empty(0), np.empty((0, 0), dtype=dtype)
    empty3 = np.empty((0, 0, 0), dtype=dtype)
    K = np.empty((tab.shape[0], n), dtype=dtype)
    fstate = records.float_state()
    istate = records.int_state()
    field = plain_field(model_addresses(rhs=address) if dtype == np.float64
                        else model_addresses(rhs_complex=address))
    code = integrate(field, y, np.array(p, dtype=dtype), np.full(n, atol), fopts, iopts,
                     tab, info, np.asarray(t_eval, dtype=float), t_out, y_out, empty1, empty1,
                     empty2, empty3, K, fstate, istate)
    assert code == st.SUCCESS
    return y_out.T, istate.copy()


@pytest.fixture(scope="module")
def lv_model():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P).model


@pytest.mark.parametrize("method", ["Tsit5", "DP5", "Vern7"])
def test_complex_solve_has_the_real_step_sequence(lv_model, method):
    t_eval = np.linspace(0.0, 10.0, 11)
    real, real_state = _run(lv_model.address, LV_Y0, LV_P, method, t_eval)
    p = np.array(LV_P, dtype=complex)
    p[0] += 1j * H
    cplx, cplx_state = _run(lv_model.address_complex, np.array(LV_Y0, dtype=complex), p,
                            method, t_eval)
    np.testing.assert_array_equal(cplx.real, real)
    np.testing.assert_array_equal(cplx_state, real_state)


@pytest.mark.parametrize("method", ["Tsit5", "RK4"])
def test_complex_step_is_the_derivative_of_the_discrete_solution(lv_model, method):
    """With the steps frozen (fixed dt), d y(T)/d p_j by the complex step equals central
    differences of the same discrete map to their truncation error."""
    t_eval = np.array([0.0, 5.0])
    dt = 0.01
    for j in range(4):
        p = np.array(LV_P, dtype=complex)
        p[j] += 1j * H
        cplx, _ = _run(lv_model.address_complex, np.array(LV_Y0, dtype=complex), p, method,
                       t_eval, dt=dt)
        derivative = cplx[:, -1].imag / H
        delta = 1e-6 * max(1.0, abs(LV_P[j]))
        plus, minus = np.array(LV_P), np.array(LV_P)
        plus[j] += delta
        minus[j] -= delta
        y_plus, _ = _run(lv_model.address, LV_Y0, plus, method, t_eval, dt=dt)
        y_minus, _ = _run(lv_model.address, LV_Y0, minus, method, t_eval, dt=dt)
        central = (y_plus[:, -1] - y_minus[:, -1]) / (2 * delta)
        np.testing.assert_allclose(derivative, central, rtol=1e-6, atol=1e-8)
