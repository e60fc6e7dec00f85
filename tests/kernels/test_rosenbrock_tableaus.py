"""Rosenbrock tableaus: structure, order conditions and convergence of a reference integrator.

The reference integrator below is plain NumPy and follows the transformed form documented
in `paramest.kernels.rosenbrock_tableaus` literally (fixed steps, exact Jacobian and f_t,
`numpy.linalg.solve`), so these tests pin down the convention the compiled kernel relies
on, independently of that kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from paramest.kernels.rosenbrock_tableaus import (
    ROSENBROCK_TABLEAUS,
    RosenbrockTableau,
    from_classical,
    get_rosenbrock_tableau,
    row_order_condition_residuals,
)

NAMES = list(ROSENBROCK_TABLEAUS)
# Coefficients are exact to ~1e-16 relative and reach ~1e2: exact identities hold to
# ~1e-14 here, and a wrong digit among the first dozen shows up far above this.
TOL = 1e-11
# Allowed distance of a fitted convergence slope from the theoretical order.
SLOPE_TOL = 0.3


@pytest.fixture(params=NAMES)
def tab(request) -> RosenbrockTableau:
    return ROSENBROCK_TABLEAUS[request.param]


# ------------------------------------------------------------------ reference integrator


@dataclass(frozen=True)
class Problem:
    """Non-autonomous ODE with exact Jacobian, time derivative and solution."""

    f: Callable
    jac: Callable
    dfdt: Callable
    exact: Callable


def stage_increments(tab: RosenbrockTableau, prob: Problem, t: float, y, h: float):
    """Stage increments u_i of one step, exactly as the module docstring defines them."""
    jac = prob.jac(t, y)
    f_t = prob.dfdt(t, y)
    w = np.eye(y.size) / (h * tab.gamma) - jac
    u = np.zeros((tab.n_stages, y.size))
    for i in range(tab.n_stages):
        arg = y + tab.A[i, :i] @ u[:i]
        rhs = (
            prob.f(t + tab.alpha[i] * h, arg)
            + (tab.C[i, :i] @ u[:i]) / h
            + tab.gamma_sum[i] * h * f_t
        )
        u[i] = np.linalg.solve(w, rhs)
    return u


def integrate(tab: RosenbrockTableau, prob: Problem, t0: float, t1: float, n: int, weights):
    """Solution at t1 after n fixed steps that each advance by ``weights @ u``."""
    h = (t1 - t0) / n
    y = prob.exact(t0)
    for k in range(n):
        y = y + weights @ stage_increments(tab, prob, t0 + k * h, y, h)
    return y


def slope(hs, errors) -> float:
    """Least-squares slope of log(error) against log(h)."""
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])


def _nonstiff_exact(t):
    y1 = 1.0 / (1.0 + t * t)
    return np.array([y1, np.cos(t) * y1])


def _nonstiff_f(t, y):
    # The term y2 - cos(t) y1 vanishes on the exact solution; it is there so that the
    # Jacobian is full and f_t has contributions the solution alone would not give.
    y1, y2 = y
    return np.array(
        [-2.0 * t * y1 * y1 + (y2 - np.cos(t) * y1), -np.sin(t) * y1 - 2.0 * t * y1 * y2]
    )


def _nonstiff_jac(t, y):
    y1, y2 = y
    return np.array([[-4.0 * t * y1 - np.cos(t), 1.0], [-np.sin(t) - 2.0 * t * y2, -2.0 * t * y1]])


def _nonstiff_dfdt(t, y):
    y1, y2 = y
    return np.array([-2.0 * y1 * y1 + np.sin(t) * y1, -np.cos(t) * y1 - 2.0 * y1 * y2])


#: y1 = 1 / (1 + t^2), y2 = cos(t) y1: nonlinear, non-autonomous, coupled and non-stiff.
NONSTIFF = Problem(_nonstiff_f, _nonstiff_jac, _nonstiff_dfdt, _nonstiff_exact)

#: step counts on [0, 2] for the global convergence tests: errors from ~1e-6 down to
#: ~1e-11, in the asymptotic regime and well above rounding error, for every method
GLOBAL_STEPS = (16, 24, 32, 48, 64, 128)

#: first step size of the one-step (local) tests of the dense output and of the error
#: estimate, halved four times, per method: steps at which the leading error term
#: dominates (Rodas4's next term is large up to h ~ 0.05) and rounding does not (the
#: Rodas5P interpolant's error reaches ~2e-13 at the smallest step)
DENSE_H0 = {"Rodas5P": 0.1, "Rodas4": 0.025, "Rosenbrock23": 0.1}
ESTIMATE_H0 = {"Rodas5P": 0.025, "Rodas4": 0.025, "Rosenbrock23": 0.1}

#: step fractions at which the continuous extension is checked, inside the step where
#: every weight w_i(theta) contributes
DENSE_THETAS = (0.3, 0.4, 0.5, 0.6, 0.7)


def is_stiffly_accurate(tab: RosenbrockTableau) -> bool:
    """Whether y_new is the argument of the last stage, at t + h, plus the last increment."""
    last = tab.n_stages - 1
    return bool(
        tab.alpha[last] == 1.0
        and tab.m[last] == 1.0
        and np.array_equal(tab.A[last, :last], tab.m[:last])
    )


def prothero_robinson(lam: float) -> Problem:
    """y' = lam (y - sin t) + cos t, y(0) = 0, exact solution sin t."""
    return Problem(
        f=lambda t, y: lam * (y - np.sin(t)) + np.cos(t),
        jac=lambda t, y: np.array([[lam]]),
        dfdt=lambda t, y: np.array([-lam * np.cos(t) - np.sin(t)]),
        exact=lambda t: np.array([np.sin(t)]),
    )


def _gamma_matrix(tab: RosenbrockTableau) -> np.ndarray:
    """Classical Gamma, computed here rather than by the module under test."""
    return np.linalg.inv(np.eye(tab.n_stages) / tab.gamma - tab.C)


# ------------------------------------------------------------------------------ lookup


def test_names_and_lookup():
    assert NAMES == ["Rodas5P", "Rodas4", "Rosenbrock23"]
    for name, tab in ROSENBROCK_TABLEAUS.items():
        assert tab.name == name
        assert get_rosenbrock_tableau(name.upper()) is tab
        assert get_rosenbrock_tableau(name.lower()) is tab
    with pytest.raises(ValueError, match="Rodas5P, Rodas4, Rosenbrock23"):
        get_rosenbrock_tableau("rodas6")


def test_reference_is_cited(tab):
    assert len(tab.reference) > 20
    expected = {"Rodas5P": "Steinebach", "Rodas4": "Hairer", "Rosenbrock23": "Shampine"}
    assert expected[tab.name] in tab.reference


# --------------------------------------------------------------------------- structure

STAGES = {"Rodas5P": 8, "Rodas4": 6, "Rosenbrock23": 3}
ORDERS = {"Rodas5P": (5, 4, 4), "Rodas4": (4, 3, 3), "Rosenbrock23": (2, 3, 2)}


def test_structure(tab):
    s = tab.n_stages
    assert s == STAGES[tab.name]
    assert (tab.order, tab.embedded_order, tab.dense_order) == ORDERS[tab.name]
    for attr, shape in [
        ("A", (s, s)),
        ("C", (s, s)),
        ("alpha", (s,)),
        ("gamma_sum", (s,)),
        ("m", (s,)),
        ("m_error", (s,)),
    ]:
        arr = getattr(tab, attr)
        assert arr.shape == shape, attr
        assert arr.dtype == np.float64, attr
        assert not arr.flags.writeable, attr
    assert tab.dense.shape[0] == s and tab.dense.shape[1] >= tab.dense_order
    assert not tab.dense.flags.writeable
    assert np.all(np.triu(tab.A) == 0.0)
    assert np.all(np.triu(tab.C) == 0.0)
    assert tab.gamma > 0.0
    assert tab.alpha[0] == 0.0
    with pytest.raises(ValueError):
        tab.m[0] = 1.0


def test_stage_times_and_ft_coefficients_match_classical_row_sums(tab):
    # A non-autonomous problem is integrated like its autonomous extension only when the
    # stage times are the row sums of alpha_ij and the f_t coefficients those of Gamma.
    gamma_matrix = _gamma_matrix(tab)
    assert np.allclose(np.diag(gamma_matrix), tab.gamma, rtol=0.0, atol=TOL)
    assert np.allclose(gamma_matrix.sum(axis=1), tab.gamma_sum, rtol=0.0, atol=TOL)
    assert np.allclose((tab.A @ gamma_matrix).sum(axis=1), tab.alpha, rtol=0.0, atol=TOL)


def test_weight_sums(tab):
    # In the transformed form neither m nor m_error has a fixed sum (for the stiffly
    # accurate Rodas methods m_error is the last unit vector, so it sums to 1); what
    # consistency requires is that the classical weights b = m Gamma sum to 1 and the
    # classical error weights b - b_hat to 0.
    gamma_matrix = _gamma_matrix(tab)
    assert abs((tab.m @ gamma_matrix).sum() - 1.0) < TOL
    assert abs((tab.m_error @ gamma_matrix).sum()) < TOL
    assert abs(tab.m_error @ tab.gamma_sum) < TOL
    assert np.any(tab.m_error != 0.0)


def test_dense_output_ends(tab):
    # w(1) = m: the interpolant reaches y_new; w(0) = 0 since the polynomial has no
    # constant term.
    assert np.allclose(tab.dense.sum(axis=1), tab.m, rtol=0.0, atol=TOL)
    assert np.allclose(tab.dense_weights(1.0), tab.m, rtol=0.0, atol=TOL)
    assert np.all(tab.dense_weights(0.0) == 0.0)


def test_stiff_accuracy():
    # Rodas methods are stiffly accurate (y_new is the last stage's argument plus its
    # increment, with the error estimate that increment); Rosenbrock23 is not, but its
    # last stage is evaluated at (t + h, y_new).
    for name in ("Rodas5P", "Rodas4"):
        tab = ROSENBROCK_TABLEAUS[name]
        assert is_stiffly_accurate(tab)
        assert np.array_equal(tab.m_error, np.eye(tab.n_stages)[-1])
        assert tab.gamma_sum[-1] == 0.0
    tab = ROSENBROCK_TABLEAUS["Rosenbrock23"]
    assert not is_stiffly_accurate(tab)
    assert tab.alpha[-1] == 1.0 and np.array_equal(tab.A[-1], tab.m)


# -------------------------------------------------------------------- order conditions


def test_order_conditions_hold_up_to_the_stated_orders(tab):
    assert np.abs(row_order_condition_residuals(tab, tab.m, tab.order)).max() < TOL
    assert np.abs(row_order_condition_residuals(tab, tab.m_hat, tab.embedded_order)).max() < TOL
    for theta in np.linspace(0.0, 1.0, 11):
        res = row_order_condition_residuals(tab, tab.dense_weights(theta), tab.dense_order, theta)
        assert np.abs(res).max() < TOL, theta


def test_stated_orders_are_not_understated(tab):
    # Each order is exact: some condition one order higher fails clearly.
    assert np.abs(row_order_condition_residuals(tab, tab.m, tab.order + 1)).max() > 1e-4
    res = row_order_condition_residuals(tab, tab.m_hat, tab.embedded_order + 1)
    assert np.abs(res).max() > 1e-4
    res = row_order_condition_residuals(tab, tab.dense_weights(0.5), tab.dense_order + 1, 0.5)
    assert np.abs(res).max() > 1e-5


def test_order_conditions_by_hand_low_orders(tab):
    # Hairer & Wanner, Solving ODEs II, Table IV.7.1, with beta_ij = alpha_ij + gamma_ij
    # (j < i) and beta'_i = sum_j beta_ij; independent of the tree machinery.
    gamma_matrix = _gamma_matrix(tab)
    alpha_matrix = tab.A @ gamma_matrix
    g = tab.gamma
    beta = np.tril(alpha_matrix + gamma_matrix, -1)
    c = alpha_matrix.sum(axis=1)
    bp = beta.sum(axis=1)
    for weights, order in ((tab.m, tab.order), (tab.m_hat, tab.embedded_order)):
        b = weights @ gamma_matrix
        conditions = [b.sum() - 1.0, b @ bp - (0.5 - g)]
        if order >= 3:
            conditions += [b @ c**2 - 1.0 / 3.0, b @ beta @ bp - (1.0 / 6.0 - g + g * g)]
        if order >= 4:
            conditions += [
                b @ c**3 - 0.25,
                b @ (c * (alpha_matrix @ bp)) - (1.0 / 8.0 - g / 3.0),
                b @ beta @ c**2 - (1.0 / 12.0 - g / 3.0),
                b @ beta @ beta @ bp - (1.0 / 24.0 - g / 2.0 + 1.5 * g * g - g**3),
            ]
        assert np.abs(conditions).max() < TOL


# ------------------------------------------------------------- construction and checks


def test_from_classical_round_trip(tab):
    alpha_matrix, gamma_matrix, b, b_hat = tab.classical()
    assert np.allclose(gamma_matrix, _gamma_matrix(tab), rtol=0.0, atol=TOL)
    rebuilt = from_classical(
        tab.name,
        tab.order,
        tab.embedded_order,
        alpha_matrix,
        gamma_matrix,
        b,
        b_hat,
        reference=tab.reference,
        dense=gamma_matrix.T @ tab.dense,
        dense_order=tab.dense_order,
    )
    for attr in ("A", "C", "alpha", "gamma_sum", "m", "m_error", "dense"):
        scale = max(1.0, np.abs(getattr(tab, attr)).max())
        assert np.allclose(getattr(rebuilt, attr), getattr(tab, attr), rtol=0.0, atol=TOL * scale)
    assert rebuilt.gamma == pytest.approx(tab.gamma, rel=1e-15)


def test_from_classical_rejects_bad_gamma():
    with pytest.raises(ValueError, match="constant positive diagonal"):
        from_classical(
            "x", 1, 1, np.zeros((2, 2)), [[0.5, 0.0], [0.0, 0.4]], [1, 0], [1, 0], reference="-"
        )
    with pytest.raises(ValueError, match="lower triangular"):
        from_classical(
            "x", 1, 1, np.zeros((2, 2)), [[0.5, 0.1], [0.0, 0.5]], [1, 0], [1, 0], reference="-"
        )


def _perturbed(tab: RosenbrockTableau, attr: str, index) -> dict:
    # Relative change of 1e-6 (absolute for a zero entry): far below what the convergence
    # tests could see, far above the tolerance of the construction checks.
    arr = np.array(getattr(tab, attr))
    arr[index] += 1e-6 * max(1.0, abs(arr[index]))
    return {attr: arr}


@pytest.mark.parametrize(
    "change",
    [
        lambda tab: _perturbed(tab, "C", (1, 0)),
        lambda tab: _perturbed(tab, "A", (2, 1)),
        lambda tab: _perturbed(tab, "alpha", 1),
        lambda tab: _perturbed(tab, "gamma_sum", 1),
        lambda tab: _perturbed(tab, "m", 0),
        lambda tab: _perturbed(tab, "dense", (0, 1)),
        lambda tab: {"gamma": tab.gamma * (1.0 + 1e-6)},
        lambda tab: _perturbed(tab, "m_error", 0),
        lambda tab: {"A": np.array(tab.A) + np.triu(np.ones_like(tab.A), 1)},
        lambda tab: {"C": np.zeros((2, 2))},
        lambda tab: {"dense": np.zeros((tab.n_stages, 1))},
        lambda tab: {"dense_order": tab.dense_order + 1},
    ],
)
def test_construction_checks_catch_errors(tab, change):
    with pytest.raises(ValueError, match=tab.name):
        dataclasses.replace(tab, **change(tab))


def test_unchanged_copy_passes_checks(tab):
    assert dataclasses.replace(tab).name == tab.name


# ------------------------------------------------------- the transformed form in practice


def _classical_step(tab: RosenbrockTableau, prob: Problem, t: float, y, h: float, theta):
    """One step in the classical form (Hairer & Wanner (7.4)), y_new and y(t + theta h).

    (I - h gamma J) k_i = h f(t + c_i h, y + sum_j alpha_ij k_j) + h J sum_j gamma_ij k_j
    + gamma_i h^2 f_t, y_new = y + sum_i b_i k_i.
    """
    gamma_matrix = _gamma_matrix(tab)
    alpha_matrix = tab.A @ gamma_matrix
    b = tab.m @ gamma_matrix
    b_theta = tab.dense_weights(theta) @ gamma_matrix
    jac = prob.jac(t, y)
    f_t = prob.dfdt(t, y)
    lhs = np.eye(y.size) - h * tab.gamma * jac
    k = np.zeros((tab.n_stages, y.size))
    for i in range(tab.n_stages):
        rhs = (
            h * prob.f(t + alpha_matrix[i].sum() * h, y + alpha_matrix[i, :i] @ k[:i])
            + h * jac @ (gamma_matrix[i, :i] @ k[:i])
            + gamma_matrix[i].sum() * h * h * f_t
        )
        k[i] = np.linalg.solve(lhs, rhs)
    return y + b @ k, y + b_theta @ k


def test_transformed_step_equals_classical_step(tab):
    t, h, theta = 0.3, 0.1, 0.4
    y = NONSTIFF.exact(t) + np.array([1e-3, -2e-3])
    u = stage_increments(tab, NONSTIFF, t, y, h)
    y_new, y_theta = _classical_step(tab, NONSTIFF, t, y, h, theta)
    assert np.allclose(y + tab.m @ u, y_new, rtol=0.0, atol=1e-13)
    assert np.allclose(y + tab.dense_weights(theta) @ u, y_theta, rtol=0.0, atol=1e-13)


def test_rosenbrock23_matches_ode23s():
    # The ode23s step as Shampine & Reichelt write it, with M = I - h d J.
    tab = ROSENBROCK_TABLEAUS["Rosenbrock23"]
    d = 1.0 / (2.0 + np.sqrt(2.0))
    e32 = 6.0 + np.sqrt(2.0)
    assert tab.gamma == pytest.approx(d, rel=1e-15)
    assert tab.alpha.tolist() == [0.0, 0.5, 1.0]
    prob, t, h = NONSTIFF, 0.3, 0.1
    y = prob.exact(t) + np.array([1e-3, -2e-3])
    big_m = np.eye(2) - h * d * prob.jac(t, y)
    f_t = prob.dfdt(t, y)
    f0 = prob.f(t, y)
    k1 = np.linalg.solve(big_m, f0 + h * d * f_t)
    f1 = prob.f(t + 0.5 * h, y + 0.5 * h * k1)
    k2 = np.linalg.solve(big_m, f1 - k1) + k1
    y_new = y + h * k2
    f2 = prob.f(t + h, y_new)
    k3 = np.linalg.solve(big_m, f2 - e32 * (k2 - f1) - 2.0 * (k1 - f0) + h * d * f_t)
    error = h / 6.0 * (k1 - 2.0 * k2 + k3)

    u = stage_increments(tab, prob, t, y, h)
    assert np.allclose(y + tab.m @ u, y_new, rtol=0.0, atol=1e-14)
    # ode23s's estimate is y_hat - y_new; here m_error = m - m_hat, hence the sign.
    assert np.allclose(tab.m_error @ u, -error, rtol=0.0, atol=1e-14)
    for theta in (0.25, 0.5, 0.9):
        expected = y + h * (
            theta * (1.0 - theta) / (1.0 - 2.0 * d) * k1
            + theta * (theta - 2.0 * d) / (1.0 - 2.0 * d) * k2
        )
        assert np.allclose(y + tab.dense_weights(theta) @ u, expected, rtol=0.0, atol=1e-14)


# -------------------------------------------------------------------------- convergence


def _global_errors(tab, weights):
    t1 = 2.0
    exact = NONSTIFF.exact(t1)
    errors = [
        np.abs(integrate(tab, NONSTIFF, 0.0, t1, n, weights) - exact).max() for n in GLOBAL_STEPS
    ]
    return 2.0 / np.array(GLOBAL_STEPS), np.array(errors)


@pytest.mark.parametrize("name", NAMES)
def test_solution_order(name):
    tab = ROSENBROCK_TABLEAUS[name]
    hs, errors = _global_errors(tab, tab.m)
    assert errors.min() > 1e-12  # rounding stays negligible
    assert abs(slope(hs, errors) - tab.order) < SLOPE_TOL


@pytest.mark.parametrize("name", NAMES)
def test_embedded_order(name):
    tab = ROSENBROCK_TABLEAUS[name]
    hs, errors = _global_errors(tab, tab.m_hat)
    assert errors.min() > 1e-12
    assert abs(slope(hs, errors) - tab.embedded_order) < SLOPE_TOL


def _local_errors(tab, what):
    """One step from the exact solution at t0: errors of the interpolant, or |estimate|."""
    t0 = 0.3
    h0 = DENSE_H0[tab.name] if what == "dense" else ESTIMATE_H0[tab.name]
    hs = h0 / 2.0 ** np.arange(5)
    y0 = NONSTIFF.exact(t0)
    errors = []
    for h in hs:
        u = stage_increments(tab, NONSTIFF, t0, y0, h)
        if what == "dense":
            err = max(
                np.abs(y0 + tab.dense_weights(th) @ u - NONSTIFF.exact(t0 + th * h)).max()
                for th in DENSE_THETAS
            )
        else:
            err = np.abs(tab.m_error @ u).max()
        errors.append(err)
    return hs, np.array(errors)


@pytest.mark.parametrize("name", NAMES)
def test_dense_output_order(name):
    # Local error of the continuous extension, the worst over theta in [0.3, 0.7]: a
    # dense output of order q is O(h**(q + 1)) there.
    tab = ROSENBROCK_TABLEAUS[name]
    hs, errors = _local_errors(tab, "dense")
    assert errors.min() > 1e-13
    assert abs(slope(hs, errors) - (tab.dense_order + 1)) < SLOPE_TOL


@pytest.mark.parametrize("name", NAMES)
def test_error_estimate_order(name):
    # The estimate is the local error of the lower-order of the two solutions.
    tab = ROSENBROCK_TABLEAUS[name]
    hs, estimates = _local_errors(tab, "estimate")
    expected = min(tab.order, tab.embedded_order) + 1
    assert abs(slope(hs, estimates) - expected) < SLOPE_TOL


# ----------------------------------------------------------------- Prothero-Robinson

#: Observed on y' = lambda (y - sin t) + cos t, lambda = -1e6, on [0, 1] with 10 .. 80
#: steps (h lambda from -1e5 to -1.25e4): slope of the global error at t = 1 and a bound
#: on it. The stiffly accurate Rodas methods have errors of size O(h**k / |lambda|)
#: (k = 3 for Rodas5P, 1 for Rodas4: Rodas4 is known to lose order on this problem, which
#: Rodas4P and Rodas5P were built to avoid), so tiny; Rosenbrock23 keeps its order 2 with
#: an error independent of lambda.
PR_OBSERVED = {"Rodas5P": (3.0, 1e-11), "Rodas4": (1.0, 1e-8), "Rosenbrock23": (2.0, 1e-3)}
PR_STEPS = (10, 20, 40, 80)


@pytest.mark.parametrize("name", NAMES)
def test_prothero_robinson_converges(name):
    tab = ROSENBROCK_TABLEAUS[name]
    prob = prothero_robinson(-1.0e6)
    errors = np.array(
        [abs(integrate(tab, prob, 0.0, 1.0, n, tab.m)[0] - np.sin(1.0)) for n in PR_STEPS]
    )
    expected_slope, bound = PR_OBSERVED[name]
    assert np.all(np.diff(errors) < 0.0)
    assert errors.max() < bound
    assert abs(slope(1.0 / np.array(PR_STEPS), errors) - expected_slope) < SLOPE_TOL


@pytest.mark.parametrize("name", NAMES)
def test_prothero_robinson_stiff_limit(name):
    # Stiffly accurate methods solve the limit lambda -> -inf (the algebraic equation
    # y = sin t) exactly, so their error shrinks like 1 / |lambda|; the others do not.
    tab = ROSENBROCK_TABLEAUS[name]
    ratios = [
        abs(integrate(tab, prothero_robinson(-1.0e6), 0.0, 1.0, n, tab.m)[0] - np.sin(1.0))
        / abs(integrate(tab, prothero_robinson(-1.0e8), 0.0, 1.0, n, tab.m)[0] - np.sin(1.0))
        for n in (10, 20)
    ]
    if is_stiffly_accurate(tab):
        assert all(30.0 < r < 300.0 for r in ratios)
    else:
        assert all(0.9 < r < 1.1 for r in ratios)
