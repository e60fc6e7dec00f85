"""Forward sensitivities converge with the order of their method (fixed steps), and are the
derivatives of the discrete solution: ComplexStep for explicit methods, central differences
of fixed-step solves (the discrete tangent-linear model) for Rosenbrock methods."""

import numpy as np
import pytest

import paramest as pe
from paramest.kernels.rosenbrock_tableaus import ROSENBROCK_TABLEAUS
from tests.problems import LV_P, LV_Y0, PERIODIC_GROWTH, lotka_volterra, periodic_growth

METHOD_NAMES = list(pe.METHODS)
ROSENBROCK_NAMES = list(ROSENBROCK_TABLEAUS)
EXPLICIT_ADAPTIVE = [
    name for name in METHOD_NAMES if name not in ROSENBROCK_TABLEAUS and pe.METHODS[name].adaptive
]

LV_T_END = 2.0
#: Tsit5 and DP5 minimise their fifth-order error coefficients, so on Lotka–Volterra the
#: sixth-order terms dominate (observed slopes 5.5-6.9) until the error is near 1e-10,
#: where the error changes sign (slopes 4.3-4.8 from there down to rounding): no window
#: above the rounding floor shows the asymptotic order. On Lotka–Volterra they get the
#: lower bound only; their order is measured on the periodic-growth problem, where the
#: fifth-order term dominates.
PRE_ASYMPTOTIC_ON_LV = ("Tsit5", "DP5")

# step counts growing by sqrt(2), as in test_convergence: the finest four whose error is
# above the rounding floor (the reference is good to about 1e-13)
_GEOMETRIC_STEP_COUNTS = np.unique(np.round(4 * np.sqrt(2) ** np.arange(26)).astype(int))
_STATE_FLOOR = 1e-11
#: sensitivities are about ten times larger than the states here, and so is their rounding
_SENS_FLOOR = 1e-10
_MAX_STEPS = 6000  # low orders never reach the floor: stop in reasonable time


def _observed_order(step_counts, errors, floor):
    """Slope of log(error) against log(step size) over the finest four step counts before
    the error first drops to ``floor``."""
    step_counts = np.asarray(step_counts, dtype=float)
    errors = np.asarray(errors)
    below = np.flatnonzero(errors <= floor)
    end = below[0] if below.size else errors.size
    counts, kept = step_counts[:end][-4:], errors[:end][-4:]
    assert counts.size == 4, ("too few step counts above the floor", step_counts, errors)
    slope, _ = np.polyfit(np.log(1.0 / counts), np.log(kept), 1)
    return slope, counts.astype(int).tolist(), kept.tolist()


def _convergence(problem, method, t_end, exact_y, exact_sens, sens_y0):
    """Errors of the state and the sensitivities at ``t_end`` for fixed steps ``t_end / N``
    over the geometric step counts, until both are below their floor."""
    counts, state_errors, sens_errors = [], [], []
    t0 = problem.t_span[0]
    for n_steps in _GEOMETRIC_STEP_COUNTS:
        sol = pe.solve(problem, method, t_eval=[t_end], dt=(t_end - t0) / n_steps,
                       max_steps=10**6, sensitivity=pe.Forward(), sens_y0=sens_y0)
        assert sol.success and sol.n_accepted == n_steps, (method, n_steps, sol.message)
        counts.append(n_steps)
        state_errors.append(np.max(np.abs(sol.y[:, -1] - exact_y)))
        sens_errors.append(np.max(np.abs(sol.sens[:, :, -1] - exact_sens)))
        if sens_errors[-1] < _SENS_FLOOR and state_errors[-1] < _STATE_FLOOR:
            break
        if n_steps > _MAX_STEPS:
            break
    return counts, state_errors, sens_errors


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, LV_T_END), LV_P)


@pytest.fixture(scope="module")
def lv_reference(lv):
    ref = pe.solve(lv, "Vern7", t_eval=[LV_T_END], rtol=1e-13, atol=1e-14,
                   sensitivity=pe.Forward(), sens_y0=[0, 1])
    assert ref.success
    return ref.y[:, -1], ref.sens[:, :, -1]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_sensitivity_order_on_lotka_volterra(lv, lv_reference, method):
    """A nonlinear problem whose second derivatives (f_yy, f_yp) enter the sensitivity
    equations and, for Rosenbrock methods, the tangent-linear stage coupling. Columns: all
    four parameters and both initial states."""
    order = pe.METHODS[method].order
    counts, state_errors, sens_errors = _convergence(
        lv, method, LV_T_END, lv_reference[0], lv_reference[1], sens_y0=[0, 1]
    )
    state_order = _observed_order(counts, state_errors, _STATE_FLOOR)
    sens_order = _observed_order(counts, sens_errors, _SENS_FLOOR)
    assert sens_order[0] > order - 0.3, (method, "sensitivities", order, sens_order)
    assert state_order[0] > order - 0.3, (method, "states", order, state_order)
    if method not in PRE_ASYMPTOTIC_ON_LV:
        assert sens_order[0] < order + 0.3, (method, "sensitivities", order, sens_order)
        assert state_order[0] < order + 0.3, (method, "states", order, state_order)


@pytest.mark.parametrize(
    "method", [*PRE_ASYMPTOTIC_ON_LV, "Rodas5P", "Rodas4", "Rosenbrock23"]
)
def test_sensitivity_order_on_periodic_growth(method):
    """y' = p cos(p t) y, y(0) = y0: y = y0 exp(sin(p t)), dy/dp = y t cos(p t),
    dy/dy0 = exp(sin(p t)). The parameter enters f nonlinearly (f_p, f_yp != 0), and f
    reads t, so the Rosenbrock methods' tangent-linear model needs d/dt of each column's
    right-hand side (fields.field_time_derivative)."""
    t_end, rate = 2.0, 1.5
    problem = pe.ODEProblem(periodic_growth, PERIODIC_GROWTH.y0, (0.0, t_end), [rate])
    y = np.exp(np.sin(rate * t_end))
    exact_sens = np.array([[y * t_end * np.cos(rate * t_end), y]])
    order = pe.METHODS[method].order
    counts, state_errors, sens_errors = _convergence(
        problem, method, t_end, np.array([y]), exact_sens, sens_y0=[0]
    )
    state_order = _observed_order(counts, state_errors, _STATE_FLOOR)
    sens_order = _observed_order(counts, sens_errors, _SENS_FLOOR)
    assert abs(sens_order[0] - order) < 0.3, (method, "sensitivities", order, sens_order)
    if method in ("Tsit5", "DP5"):
        assert abs(state_order[0] - order) < 0.3, (method, "states", order, state_order)
    else:
        # Rodas4's state error happens to fall faster than h^4 on this problem (5.3
        # measured); the states' own order is tested in test_convergence.py
        assert state_order[0] > order - 0.3, (method, "states", order, state_order)


# ---------------------------------------------------------------------------------------
# the sensitivities are the derivatives of the discrete solution


@pytest.mark.parametrize("method", EXPLICIT_ADAPTIVE)
def test_complex_step_equals_forward_without_error_control(lv, method):
    """Both are the derivative of the computed solution with its step sizes frozen: the
    plain error norm chooses the steps of both (and of the solve without sensitivities)."""
    t_eval = np.array([0.3, 1.0, 1.7, 2.0])
    options = dict(t_eval=t_eval, rtol=1e-8, atol=1e-10, sens_y0=[0, 1])
    complex_step = pe.solve(lv, method, sensitivity=pe.ComplexStep(), **options)
    forward = pe.solve(lv, method, sensitivity=pe.Forward(error_control=False), **options)
    plain = pe.solve(lv, method, t_eval=t_eval, rtol=1e-8, atol=1e-10)
    assert complex_step.success and forward.success
    assert complex_step.n_accepted == forward.n_accepted == plain.n_accepted
    assert complex_step.n_rejected == forward.n_rejected == plain.n_rejected
    np.testing.assert_allclose(complex_step.y, plain.y, rtol=1e-13, atol=0)
    np.testing.assert_allclose(forward.y, plain.y, rtol=1e-13, atol=0)
    assert complex_step.sens.shape == forward.sens.shape == (2, 6, 4)
    difference = np.max(np.abs(forward.sens - complex_step.sens))
    scale = np.max(np.abs(complex_step.sens))
    assert difference < 1e-10 * scale, (method, difference, scale)
    # and not a coincidence of a too-easy check: error control changes the steps and
    # moves the sensitivities by far more than the comparison allows
    controlled = pe.solve(lv, method, sensitivity=pe.Forward(), **options)
    assert controlled.n_accepted > forward.n_accepted
    assert np.max(np.abs(controlled.sens - complex_step.sens)) > 1e-9 * scale


def pendulum(t, y, p, dydt):
    # a damped pendulum released from rest: the velocity y[1] starts at exactly 0
    dydt[0] = y[1]
    dydt[1] = -p[0] * np.sin(y[0]) - p[1] * y[1]


def pendulum_shifted(t, y, p, dydt):
    # the same motion with the velocity stored as y[1] = v + 5, which never comes near 0:
    # mathematically identical sensitivities
    dydt[0] = y[1] - 5.0
    dydt[1] = -p[0] * np.sin(y[0]) - p[1] * (y[1] - 5.0)


DISCRETE_CASES = {
    "lotka_volterra": (lotka_volterra, LV_Y0, (0.0, 2.0), LV_P),
    "pendulum_from_rest": (pendulum, (1.0, 0.0), (0.0, 2.0), (2.0, 0.3)),
    "pendulum_shifted": (pendulum_shifted, (1.0, 5.0), (0.0, 2.0), (2.0, 0.3)),
}


@pytest.mark.parametrize("case", list(DISCRETE_CASES))
@pytest.mark.parametrize("method", ROSENBROCK_NAMES)
def test_rosenbrock_sensitivities_are_the_discrete_tangent_linear_model(method, case):
    """With fixed steps, Forward() differentiates the Rosenbrock step itself (the
    second-derivative coupling included): central differences of fixed-step solves agree
    to their own error (about 1e-10 relative at relative_step 1e-5; measured 4e-10).

    The pendulum released from rest has a state that is exactly 0 at the start; its
    shifted twin (the same motion, the same sensitivities, no state near 0) is the
    control."""
    fun, y0, t_span, p = DISCRETE_CASES[case]
    problem = pe.ODEProblem(fun, y0, t_span, p)
    t_eval = np.linspace(t_span[0], t_span[1], 5)[1:]
    worst = []
    for dt in (0.1, 0.05):
        options = dict(t_eval=t_eval, dt=dt, sens_y0=[0, 1])
        forward = pe.solve(problem, method, sensitivity=pe.Forward(), **options)
        central = pe.solve(problem, method,
                           sensitivity=pe.FiniteDifferences(relative_step=1e-5), **options)
        assert forward.success and central.success
        np.testing.assert_allclose(forward.y, central.y, rtol=1e-12, atol=1e-14)
        relative = np.max(np.abs(forward.sens - central.sens)) / np.max(np.abs(central.sens))
        worst.append((dt, relative))
    assert max(relative for _, relative in worst) < 1e-8, (method, case, worst)
