"""The Rosenbrock kernel on stiff problems: published references, orders under stiffness,
Jacobians (complex step, user, finite differences), LU, and failure modes."""

import math
import warnings

import numpy as np
import pytest

import paramest as pe
from paramest.kernels import status as st
from paramest.kernels.rosenbrock import SMALL_LU
from paramest.kernels.rosenbrock_tableaus import ROSENBROCK_TABLEAUS

ROSENBROCK = list(ROSENBROCK_TABLEAUS)


def robertson(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] * y[1]
    dydt[2] = p[1] * y[1] * y[1]


def robertson_jac(t, y, p, J):
    J[0, 0] = -p[0]
    J[0, 1] = p[2] * y[2]
    J[0, 2] = p[2] * y[1]
    J[1, 0] = p[0]
    J[1, 1] = -p[2] * y[2] - 2.0 * p[1] * y[1]
    J[1, 2] = -p[2] * y[1]
    J[2, 0] = 0.0
    J[2, 1] = 2.0 * p[1] * y[1]
    J[2, 2] = 0.0


def van_der_pol(t, y, p, dydt):
    # the scaled form of the IVP test set (eps = 1e-6, i.e. mu = 1000 in the usual form)
    dydt[0] = y[1]
    dydt[1] = ((1.0 - y[0] * y[0]) * y[1] - y[0]) / p[0]


def prothero_robinson(t, y, p, dydt):
    # y' = lambda (y - g) + g' with g = sin t: exact solution sin t from y(0) = 0
    dydt[0] = p[0] * (y[0] - np.sin(t)) + np.cos(t)


def prothero_robinson_math(t, y, p, dydt):
    # the same model through math.sin/cos of t: these do not compile for a complex t
    dydt[0] = p[0] * (y[0] - math.sin(t)) + math.cos(t)


#: Mazzia & Magherini, Test Set for IVP Solvers (release 2.4, 2008): final-time
#: references computed by RADAU5 in quadruple precision.
ROBERTSON_T_END = 1e11
ROBERTSON_REF = np.array([0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050])
VDP_T_END = 2.0
VDP_REF = np.array([0.1706167732170483e01, -0.8928097010247975e00])


@pytest.fixture(scope="module")
def robertson_problem():
    return pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, ROBERTSON_T_END), [0.04, 3e7, 1e4])


@pytest.fixture(scope="module")
def robertson_with_jac():
    return pe.ODEProblem(
        robertson, [1.0, 0.0, 0.0], (0.0, ROBERTSON_T_END), [0.04, 3e7, 1e4],
        jac=robertson_jac,
    )


@pytest.fixture(scope="module")
def vdp_problem():
    return pe.ODEProblem(van_der_pol, [2.0, 0.0], (0.0, VDP_T_END), [1e-6])


def mixed_error(y, ref, floor):
    """Relative error, with ``floor`` as the absolute scale below which a component counts
    as tiny (the test set's "mixed" error)."""
    return np.max(np.abs(y - ref) / (np.abs(ref) + floor))


@pytest.mark.parametrize("method", ["Rodas5P", "Rodas4"])
def test_robertson_to_1e11_against_the_test_set(robertson_problem, method):
    # atol far below the tiny y2 (~1e-13 at the end) so that it is computed to rtol too
    sol = pe.solve(robertson_problem, method, t_eval=[ROBERTSON_T_END], rtol=1e-8,
                   atol=[1e-14, 1e-20, 1e-14])
    assert sol.success, sol.message
    assert mixed_error(sol.y[:, -1], ROBERTSON_REF, 1e-20) <= 1e-6, sol.y[:, -1]
    assert sol.njev > 0 and sol.nlu >= sol.n_accepted


def test_robertson_rosenbrock23_at_its_working_tolerance(robertson_problem):
    # a second-order method is for loose tolerances: at rtol 1e-5 it still tracks the
    # solution to t = 1e11
    sol = pe.solve(robertson_problem, "Rosenbrock23", t_eval=[ROBERTSON_T_END], rtol=1e-5,
                   atol=[1e-12, 1e-18, 1e-12])
    assert sol.success, sol.message
    assert mixed_error(sol.y[:, -1], ROBERTSON_REF, 1e-20) <= 1e-3


@pytest.mark.parametrize("method", ["Rodas5P", "Rodas4"])
def test_van_der_pol_mu_1000_against_the_test_set(vdp_problem, method):
    sol = pe.solve(vdp_problem, method, t_eval=[VDP_T_END], rtol=1e-8, atol=1e-8)
    assert sol.success, sol.message
    assert mixed_error(sol.y[:, -1], VDP_REF, 1e-8) <= 1e-6, sol.y[:, -1]


def test_user_jacobian_gives_the_complex_step_solution(robertson_problem, robertson_with_jac):
    # The complex-step Jacobian is exact to rounding, so with the same (fixed) steps both
    # runs agree to rounding; adaptive runs may part at a step whose error norm is ~1.
    a = pe.solve(robertson_problem.remake(t_span=(0.0, 1.0)), "Rodas5P", t_eval=[0.5, 1.0],
                 dt=1e-3)
    b = pe.solve(robertson_with_jac.remake(t_span=(0.0, 1.0)), "Rodas5P", t_eval=[0.5, 1.0],
                 dt=1e-3)
    assert a.success and b.success and a.njev == b.njev == 1000
    assert np.allclose(a.y, b.y, rtol=1e-11, atol=0.0)
    adaptive = pe.solve(robertson_with_jac, "Rodas5P", t_eval=[ROBERTSON_T_END], rtol=1e-8,
                        atol=[1e-14, 1e-20, 1e-14])
    assert mixed_error(adaptive.y[:, -1], ROBERTSON_REF, 1e-20) <= 1e-6


def test_complex_step_jacobian_matches_the_analytic_one():
    from paramest.kernels.derivatives import jacobians_complex_step

    problem = pe.ODEProblem(robertson, [0.9, 1e-5, 0.1], (0.0, 1.0), [0.04, 3e7, 1e4])
    y = np.array([0.7, 3e-5, 0.3])
    jac_y = np.empty((3, 3))
    jac_p = np.empty((3, 3))
    jacobians_complex_step(problem.model.address_complex, 0.0, y, problem.p, jac_y, jac_p)
    analytic = np.empty((3, 3))
    robertson_jac(0.0, y, problem.p, analytic)
    assert np.allclose(jac_y, analytic, rtol=1e-14, atol=0.0)


def test_time_derivative_by_complex_step_or_differences():
    problem = pe.ODEProblem(prothero_robinson, [0.0], (0.0, 1.0), [-10.0])
    assert problem.model.time_derivative_address(0.3, problem.y0, problem.p) != 0
    with_math = pe.ODEProblem(prothero_robinson_math, [0.0], (0.0, 1.0), [-10.0])
    assert with_math.model.time_derivative_address(0.3, with_math.y0, with_math.p) == 0
    # both give the same solution: df/dt differs only by difference error
    a = pe.solve(problem, "Rodas5P", t_eval=[1.0], rtol=1e-10, atol=1e-12)
    b = pe.solve(with_math, "Rodas5P", t_eval=[1.0], rtol=1e-10, atol=1e-12)
    assert abs(a.y[0, -1] - np.sin(1.0)) < 1e-9
    assert abs(b.y[0, -1] - np.sin(1.0)) < 1e-8


def not_complex_step_safe(t, y, p, dydt):
    # abs of the state breaks the complex step; the solution stays positive anyway
    dydt[0] = -p[0] * abs(y[0]) + p[1] * y[1]
    dydt[1] = p[0] * y[0] - p[1] * y[1] - 1e3 * y[1]


def test_central_difference_fallback_warns_once_and_solves():
    with pytest.warns(pe.ComplexStepWarning):
        problem = pe.ODEProblem(not_complex_step_safe, [1.0, 0.0], (0.0, 10.0), [1.0, 2.0])
    assert not problem.complex_step_safe
    with pytest.warns(pe.ComplexStepWarning, match="central-difference Jacobians"):
        sol = pe.solve(problem, "Rodas5P", t_eval=[10.0], rtol=1e-8, atol=1e-12)
    assert sol.success
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pe.solve(problem, "Rodas5P", t_eval=[10.0], rtol=1e-8, atol=1e-12)
    assert again.y[0, -1] == sol.y[0, -1]
    # linear for y > 0: compare with the matrix exponential
    from scipy.linalg import expm

    matrix = np.array([[-1.0, 2.0], [1.0, -1002.0]])
    assert np.allclose(sol.y[:, -1], expm(10.0 * matrix) @ [1.0, 0.0], rtol=1e-6, atol=1e-14)


#: Observed order on Prothero–Robinson in the stiff limit (h |lambda| >> 1). Rosenbrock
#: methods have stage order 1, so the classical order is not reached there; the error
#: carries a factor 1/|lambda| instead. Rodas5P was built to satisfy the extra
#: Prothero–Robinson conditions up to order 3 (Steinebach, BIT 63, 2023); Rodas4 drops to
#: order 1 (Hairer & Wanner II, Sec. VI.3); Rosenbrock23 keeps its order 2.
PROTHERO_ROBINSON_STIFF_ORDER = {"Rodas5P": 3, "Rodas4": 1, "Rosenbrock23": 2}


@pytest.mark.parametrize("method", ROSENBROCK)
def test_observed_order_on_prothero_robinson(method):
    """lambda = -1e6 with fixed steps 1e-1 .. 1.25e-2, i.e. h |lambda| from 1e5 to 1e4."""
    problem = pe.ODEProblem(prothero_robinson, [0.0], (0.0, 1.0), [-1e6])
    errors = []
    steps = [10, 20, 40, 80]
    for n_steps in steps:
        sol = pe.solve(problem, method, t_eval=[1.0], dt=1.0 / n_steps)
        assert sol.success
        errors.append(abs(sol.y[0, -1] - np.sin(1.0)))
    order = np.polyfit(np.log(1.0 / np.array(steps)), np.log(errors), 1)[0]
    assert abs(order - PROTHERO_ROBINSON_STIFF_ORDER[method]) < 0.3, (method, order, errors)
    # far below what the step size alone would allow: stiff components are damped exactly
    assert errors[0] < 1e-3


def linear(t, y, p, dydt):
    # dy/dt = M y + t b, M = p[:n*n] row-major, b = p[n*n:]: one model for every n
    n = y.shape[0]
    for i in range(n):
        acc = t * p[n * n + i]
        for j in range(n):
            acc += p[i * n + j] * y[j]
        dydt[i] = acc


@pytest.mark.parametrize("method", ROSENBROCK)
@pytest.mark.parametrize("n", [1, 2, 3, 7, SMALL_LU - 1, SMALL_LU, 40])
def test_one_step_matches_the_numpy_reference(method, n):
    """One fixed step on a random linear system against the NumPy reference step of
    tests/kernels/test_rosenbrock_tableaus.py (np.linalg.solve): covers the in-kernel LU
    below SMALL_LU states and LAPACK's at and above it, pivoting, J and df/dt."""
    from tests.kernels.test_rosenbrock_tableaus import Problem, stage_increments

    rng = np.random.default_rng(n)
    # eigenvalues spread over [-1e3, -0.1] plus coupling: pivoting is exercised
    matrix = rng.normal(size=(n, n)) - np.diag(np.logspace(-1.0, 3.0, n))
    forcing = rng.normal(size=n)
    y0 = rng.normal(size=n)
    t0, h = 0.3, 0.05
    problem = pe.ODEProblem(linear, y0, (t0, t0 + h),
                            np.concatenate([matrix.ravel(), forcing]))
    sol = pe.solve(problem, method, t_eval=[t0 + h], dt=h)
    reference_problem = Problem(
        f=lambda t, y: matrix @ y + t * forcing,
        jac=lambda t, y: matrix,
        dfdt=lambda t, y: forcing,
        exact=None,
    )
    tableau = ROSENBROCK_TABLEAUS[method]
    u = stage_increments(tableau, reference_problem, t0, y0, h)
    expected = y0 + tableau.m @ u
    assert sol.success and sol.njev == 1 and sol.nlu == 1
    assert np.allclose(sol.y[:, -1], expected, rtol=1e-11, atol=1e-12 * np.abs(expected).max())


def huge_rank_one(t, y, p, dydt):
    # J = 1e300 * ones: I/(h gamma) - J is singular in floating point for every usable h
    dydt[0] = p[0] * (y[0] + y[1])
    dydt[1] = p[0] * (y[0] + y[1])


def test_singular_iteration_matrix_fails_with_a_message():
    problem = pe.ODEProblem(huge_rank_one, [0.0, 0.0], (0.0, 1.0), [1e300])
    sol = pe.solve(problem, "Rodas5P")
    assert not sol.success and sol.status == st.SINGULAR_MATRIX
    assert "singular" in sol.message and "t=0" in sol.message


def decay(t, y, p, dydt):
    dydt[0] = -y[0]


def jac_broken_later(t, y, p, J):
    # right at the model check (t = 0), NaN from t = 0.5 on
    J[0, 0] = -1.0 if t < 0.5 else np.nan


def test_non_finite_jacobian_fails_with_a_message():
    problem = pe.ODEProblem(decay, [1.0], (0.0, 1.0), jac=jac_broken_later)
    sol = pe.solve(problem, "Rodas5P")
    assert not sol.success and sol.status == st.JACOBIAN_NON_FINITE
    assert 0.5 <= sol.t_final < 0.6
    assert "Jacobian" in sol.message and f"t={sol.t_final:.6g}" in sol.message


@pytest.mark.parametrize("method", ROSENBROCK)
def test_rosenbrock_solves_backwards(method):
    # lambda = +1e7 decays backwards in time: a stiff problem for t_span = (1, 0); an
    # explicit method would need millions of steps
    problem = pe.ODEProblem(prothero_robinson, [np.sin(1.0)], (1.0, 0.0), [1e7])
    sol = pe.solve(problem, method, rtol=1e-6, atol=1e-8)
    assert sol.success and sol.n_accepted < 3000, sol.n_accepted
    assert sol.t[-1] == 0.0 and np.all(np.diff(sol.t) < 0.0)
    assert np.max(np.abs(sol.y[0] - np.sin(sol.t))) < 1e-6


def quadratic_blow_up(t, y, p, dydt):
    # y' = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1
    dydt[0] = y[0] * y[0]


@pytest.mark.parametrize("method", ROSENBROCK)
def test_blow_up_ends_with_a_step_size_failure_near_the_singularity(method):
    problem = pe.ODEProblem(quadratic_blow_up, [1.0], (0.0, 2.0))
    sol = pe.solve(problem, method, rtol=1e-6, atol=1e-8)
    assert not sol.success and sol.status in (st.STEP_TOO_SMALL, st.NON_FINITE)
    # the numerical pole sits within rounding-amplified error of t = 1 (the problem's
    # condition number grows like 1 / (1 - t)); explicit methods behave the same
    assert 0.999 < sol.t_final < 1.001
    assert f"t={sol.t_final:.6g}" in sol.message
    # what was computed up to y = 100 is right
    early = sol.t < 0.99
    # Rosenbrock23's global error is about rtol**(2/3), amplified like y here
    rtol = 5e-3 if method == "Rosenbrock23" else 1e-4
    assert np.allclose(sol.y[0, early], 1.0 / (1.0 - sol.t[early]), rtol=rtol)
