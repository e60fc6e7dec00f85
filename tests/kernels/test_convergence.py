"""Observed convergence orders of every tableau, run through the compiled kernel."""

import numpy as np
import pytest

import paramest as pe
from paramest.kernels.rosenbrock_tableaus import ROSENBROCK_TABLEAUS
from tests.problems import (
    EXACT_PROBLEMS,
    FORCED_DECAY,
    GAUSSIAN,
    ORDER_PROBLEMS,
    ROSENBROCK_ORDER_PROBLEMS,
)

METHOD_NAMES = list(pe.METHODS)
#: (method, problem name) pairs of the step-order test
ORDER_CASES = [
    (method, problem.name)
    for method in METHOD_NAMES
    for problem in (
        ROSENBROCK_ORDER_PROBLEMS if method in ROSENBROCK_TABLEAUS else ORDER_PROBLEMS
    )
]


@pytest.fixture(scope="module")
def problems():
    return {
        problem.name: pe.ODEProblem(problem.fun, problem.y0, problem.t_span, problem.p)
        for problem in EXACT_PROBLEMS
    }


def _step_counts(order):
    # Errors must stay well above rounding (1e-13) and in the asymptotic range.
    if order >= 7:
        return [8, 12, 16, 24]
    if order >= 5:
        return [16, 24, 32, 48]
    if order >= 3:
        return [32, 64, 128, 256]
    return [64, 128, 256, 512]


def _observed_order(step_sizes, errors):
    slope, _ = np.polyfit(np.log(step_sizes), np.log(errors), 1)
    return slope


# step counts growing by sqrt(2): the finest four whose error is above the rounding floor
_GEOMETRIC_STEP_COUNTS = np.unique(np.round(4 * np.sqrt(2) ** np.arange(26)).astype(int))
_ROUNDING_FLOOR = 1e-11


@pytest.mark.parametrize(("method", "name"), ORDER_CASES)
def test_observed_order_of_the_step(problems, method, name):
    exact = next(p for p in EXACT_PROBLEMS if p.name == name)
    tableau = pe.METHODS[method]
    t0, t1 = exact.t_span
    step_sizes, errors = [], []
    for n_steps in _GEOMETRIC_STEP_COUNTS:
        dt = (t1 - t0) / n_steps
        sol = pe.solve(problems[name], method, t_eval=[t1], dt=dt, max_steps=10**6)
        assert sol.success and sol.n_accepted == n_steps
        error = np.max(np.abs(sol.y[:, -1] - exact.y_exact([t1])[:, 0]))
        if error < _ROUNDING_FLOOR:
            break
        step_sizes.append(dt)
        errors.append(error)
        if n_steps > 6000:  # low orders never reach the floor: stop in reasonable time
            break
    order = _observed_order(step_sizes[-4:], errors[-4:])
    assert abs(order - tableau.order) < 0.3, (method, name, order, errors[-4:])


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_observed_order_of_the_dense_output(problems, method):
    """Interpolated values between steps: local interpolation error O(h^(q+1)) on top of the
    global error O(h^p), so the observed order is min(p, q + 1)."""
    tableau = pe.METHODS[method]
    expected = min(tableau.order, tableau.dense_order + 1)
    t0, t1 = FORCED_DECAY.t_span
    step_sizes, errors = [], []
    for n_steps in _step_counts(expected):
        dt = (t1 - t0) / n_steps
        # points strictly inside steps, at varying fractions of a step
        t_eval = t0 + dt * (np.arange(n_steps) + np.linspace(0.13, 0.87, n_steps))
        sol = pe.solve(problems["forced_decay"], method, t_eval=t_eval, dt=dt)
        step_sizes.append(dt)
        errors.append(np.max(np.abs(sol.y - FORCED_DECAY.y_exact(t_eval))))
    order = _observed_order(step_sizes, errors)
    assert abs(order - expected) < 0.3, (method, order, errors)


@pytest.mark.parametrize("method", [m for m in METHOD_NAMES if pe.METHODS[m].adaptive])
def test_adaptive_error_follows_the_tolerance(problems, method):
    """Tightening rtol by 100x must shrink the global error substantially, and the error
    must stay within a modest multiple of the tolerance."""
    t1 = GAUSSIAN.t_span[1]
    errors = []
    for rtol in (1e-4, 1e-6, 1e-8):
        sol = pe.solve(problems["gaussian"], method, t_eval=[t1], rtol=rtol, atol=rtol * 1e-2)
        assert sol.success and sol.n_rejected < sol.n_accepted
        error = abs(sol.y[0, -1] - GAUSSIAN.y_exact([t1])[0, 0])
        assert error < 100 * rtol, (method, rtol, error)
        errors.append(error)
    assert errors[2] < errors[0] / 100, errors


@pytest.mark.parametrize("method", [m for m in METHOD_NAMES if pe.METHODS[m].adaptive])
def test_adaptive_dense_output_accuracy(problems, method):
    exact = FORCED_DECAY
    t_eval = np.linspace(*exact.t_span, 57)
    sol = pe.solve(problems["forced_decay"], method, t_eval=t_eval, rtol=1e-9, atol=1e-12)
    assert np.max(np.abs(sol.y - exact.y_exact(t_eval))) < 1e-7
    dense = pe.solve(problems["forced_decay"], method, rtol=1e-9, atol=1e-12, dense_output=True)
    assert np.max(np.abs(dense.sol(t_eval) - exact.y_exact(t_eval))) < 1e-7
    # the continuous solution and the t_eval output come from the same interpolant
    assert np.allclose(dense.sol(t_eval), sol.y, rtol=0, atol=1e-9)
