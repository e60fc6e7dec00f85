"""The adjoints: DiscreteAdjoint (the reverse pass over the accepted steps, explicit and
Rosenbrock), Adjoint (the continuous adjoint, checkpointed) and BacksolveAdjoint.

It differentiates the numbers the solver returns with the step sizes held fixed, which is
what the complex step through the solver (``ComplexStep()``, whose step control reads only
real parts) computes: the two must agree to rounding, on every explicit method, for
parameter and initial-state columns, with outputs inside steps (interpolated) and at step
ends. Against the exact derivative (Forward, central differences, matrix exponentials) it
agrees to the solver's tolerance.
"""

import numpy as np
import pytest

import paramest as pe
from tests.problems import LINEAR20, LV_P, LV_Y0, lotka_volterra

ADAPTIVE = ["Tsit5", "DP5", "BS3", "Vern7"]
T_EVAL = np.linspace(0.0, 10.0, 101)


def _relative(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def lotka_volterra_abs(t, y, p, dydt):
    # abs() of a state that stays positive: the same solution, but the complex step of
    # abs is wrong, so the model check demotes the model to central differences
    dydt[0] = p[0] * abs(y[0]) - p[1] * y[0] * y[1]
    dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1]


def robertson(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] ** 2
    dydt[2] = p[1] * y[1] ** 2


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P,
                         state_names=["prey", "predator"])


@pytest.fixture(scope="module")
def cotangent():
    return np.random.default_rng(7).standard_normal((2, T_EVAL.size))


@pytest.mark.parametrize("method", ADAPTIVE)
def test_equals_the_complex_step_through_the_solver(lv, cotangent, method):
    """Parameters and both initial states: the derivative of the discrete solution, to
    rounding (measured 6e-16 to 4e-15)."""
    options = dict(method=method, rtol=1e-6, atol=1e-8, sens_y0=["prey", "predator"])
    adjoint = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), **options)
    complex_step = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.ComplexStep(), **options)
    assert adjoint.shape == (6,)
    assert _relative(adjoint, complex_step) < 1e-12


@pytest.mark.parametrize("method", ["RK4", "Euler"])
def test_fixed_steps_with_outputs_at_step_ends(lv, cotangent, method):
    """dt = 0.01 puts every output on a step end (the new state, not the interpolant);
    dt = 0.03 puts most inside steps."""
    for dt in (0.01, 0.03):
        options = dict(method=method, dt=dt, sens_y0=["prey"])
        adjoint = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), **options)
        complex_step = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.ComplexStep(), **options)
        assert _relative(adjoint, complex_step) < 1e-12, dt


def test_auto_on_a_non_stiff_problem_is_tsit5(lv, cotangent):
    adjoint = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), method="auto")
    complex_step = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.ComplexStep(),
                          method="Tsit5")
    assert _relative(adjoint, complex_step) < 1e-12


@pytest.mark.parametrize("method", ADAPTIVE)
def test_agrees_with_forward_and_differences_at_tight_tolerances(lv, cotangent, method):
    """At rtol 1e-10 the discrete solution's derivative is the exact one to about the
    tolerance: Forward agrees to 1e-6; central differences of whole solves carry the
    solver's error divided by their step (1e-10 / 1e-4) and agree to 5e-6 (measured
    1.2e-6)."""
    options = dict(method=method, rtol=1e-10, atol=1e-12, sens_y0=["predator"])
    adjoint = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), **options)
    forward = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.Forward(), **options)
    differences = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.FiniteDifferences(),
                         **options)
    assert _relative(adjoint, forward) < 1e-6
    assert _relative(adjoint, differences) < 5e-6


def test_linear_chain_against_matrix_exponentials():
    """20 states, 20 rates and 20 initial states: the gradient of sum(W * y) against the
    exact sensitivities from matrix exponentials (Van Loan)."""
    problem = pe.ODEProblem(LINEAR20.fun, LINEAR20.y0, LINEAR20.t_span, LINEAR20.p)
    _, S_p, S_y0 = LINEAR20.exact()
    weights = np.random.default_rng(3).standard_normal((20, LINEAR20.t_eval.size))
    exact = np.concatenate([np.einsum("it,ikt->k", weights, S_p),
                            np.einsum("it,ikt->k", weights, S_y0)])
    for method in ADAPTIVE:
        adjoint = pe.vjp(problem, LINEAR20.t_eval, weights, method=method, rtol=1e-10,
                         atol=1e-12, sensitivity=pe.DiscreteAdjoint(),
                         sens_y0=list(range(20)))
        assert _relative(adjoint, exact) < 1e-7, method


def test_backward_integration(cotangent):
    """t_span from 10 down to 0: the steps are negative, outputs decreasing."""
    problem = pe.ODEProblem(lotka_volterra, [1.0263, 0.9097], (10.0, 0.0), LV_P)
    times = T_EVAL[::-1].copy()
    options = dict(method="Tsit5", rtol=1e-6, atol=1e-8, sens_y0=[0, 1])
    adjoint = pe.vjp(problem, times, cotangent, sensitivity=pe.DiscreteAdjoint(), **options)
    complex_step = pe.vjp(problem, times, cotangent, sensitivity=pe.ComplexStep(), **options)
    assert _relative(adjoint, complex_step) < 1e-12


def test_a_subset_of_parameters(lv, cotangent):
    full = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), method="Tsit5")
    subset = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), method="Tsit5",
                    sens_params=[3, 1])
    np.testing.assert_allclose(subset, full[[3, 1]], rtol=1e-14)


def test_a_model_that_is_not_complex_step_safe_uses_central_differences(cotangent):
    with pytest.warns(pe.ComplexStepWarning):
        problem = pe.ODEProblem(lotka_volterra_abs, LV_Y0, (0.0, 10.0), LV_P)
    options = dict(method="Tsit5", rtol=1e-10, atol=1e-12, sens_y0=[0])
    adjoint = pe.vjp(problem, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), **options)
    forward = pe.vjp(problem, T_EVAL, cotangent, sensitivity=pe.Forward(), **options)
    assert _relative(adjoint, forward) < 1e-6


@pytest.mark.parametrize("adjoint", [pe.DiscreteAdjoint, pe.Adjoint, pe.BacksolveAdjoint])
def test_refusals(lv, cotangent, adjoint):
    with pytest.raises(ValueError, match="vjp"):
        pe.solve(lv, t_eval=T_EVAL, sensitivity=adjoint())
    if adjoint is not pe.BacksolveAdjoint:
        with pytest.raises(ValueError, match="checkpoints"):
            adjoint(checkpoints=0)
        with pytest.raises(TypeError, match="checkpoints"):
            adjoint(checkpoints=2.5)
    if adjoint is not pe.DiscreteAdjoint:
        with pytest.raises(ValueError, match="rtol"):
            adjoint(rtol=-1.0)
        with pytest.raises(TypeError, match="atol"):
            adjoint(atol="tight")
    stiff = pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, 1e3), [0.04, 3e7, 1e4])
    if adjoint is pe.BacksolveAdjoint:
        with pytest.raises(ValueError, match="explicit method"):
            pe.vjp(stiff, [1.0], np.ones((3, 1)), sensitivity=adjoint(), method="Rodas5P")
    else:  # checkpoints follow one method, not the switches of "auto"
        with pytest.raises(ValueError, match="switched"):
            pe.vjp(stiff, [1.0, 1e3], np.ones((3, 2)), sensitivity=adjoint(checkpoints=10),
                   rtol=1e-8, atol=1e-12)


def test_a_failed_solve_raises(lv, cotangent):
    with pytest.raises(pe.SolveError, match="failed"):
        pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), method="Tsit5",
               max_steps=5)


# ----------------------------------------------------------------------------------------
# a user-supplied vector-Jacobian product


def lotka_volterra_vjp(t, y, p, w, out_y, out_p):
    out_y[0] = w[0] * (p[0] - p[1] * y[1]) + w[1] * p[3] * y[1]
    out_y[1] = -w[0] * p[1] * y[0] + w[1] * (-p[2] + p[3] * y[0])
    out_p[0] = w[0] * y[0]
    out_p[1] = -w[0] * y[0] * y[1]
    out_p[2] = -w[1] * y[1]
    out_p[3] = w[1] * y[0] * y[1]


def lotka_volterra_vjp_wrong_sign(t, y, p, w, out_y, out_p):
    out_y[0] = w[0] * (p[0] - p[1] * y[1]) + w[1] * p[3] * y[1]
    out_y[1] = -w[0] * p[1] * y[0] + w[1] * (-p[2] + p[3] * y[0])
    out_p[0] = w[0] * y[0]
    out_p[1] = -w[0] * y[0] * y[1]
    out_p[2] = w[1] * y[1]  # the sign of d f_1 / d p_2 is wrong
    out_p[3] = w[1] * y[0] * y[1]


def lotka_volterra_vjp_incomplete(t, y, p, w, out_y, out_p):
    out_y[0] = w[0] * (p[0] - p[1] * y[1]) + w[1] * p[3] * y[1]
    out_y[1] = -w[0] * p[1] * y[0] + w[1] * (-p[2] + p[3] * y[0])
    for k in range(3):  # out_p[3] is never written
        out_p[k] = 0.0


def lotka_volterra_vjp_past_the_end(t, y, p, w, out_y, out_p):
    for j in range(3):
        out_y[j] = w[0]
    for k in range(4):
        out_p[k] = 0.0


def test_a_user_vjp_gives_the_same_gradient(cotangent):
    """One call per stage instead of n + k complex evaluations; the same numbers to
    rounding."""
    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P, vjp=lotka_volterra_vjp)
    options = dict(method="Tsit5", rtol=1e-6, atol=1e-8, sens_y0=[0, 1])
    adjoint = pe.vjp(problem, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), **options)
    complex_step = pe.vjp(problem, T_EVAL, cotangent, sensitivity=pe.ComplexStep(),
                          **options)
    assert _relative(adjoint, complex_step) < 1e-12
    subset = pe.vjp(problem, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(),
                    method="Tsit5", sens_params=[2])
    np.testing.assert_allclose(subset, adjoint[[2]], rtol=1e-14)


def test_a_problem_with_a_vjp_pickles(cotangent):
    import pickle

    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P, vjp=lotka_volterra_vjp)
    again = pickle.loads(pickle.dumps(problem))
    assert again.vjp is lotka_volterra_vjp and again.model.vjp_address != 0


@pytest.mark.parametrize(
    ("user_vjp", "error", "match"),
    [
        (lotka_volterra_vjp_wrong_sign, pe.ModelError, r"out_p\[2\] is .* expected about"),
        (lotka_volterra_vjp_incomplete, pe.ModelError, r"left out_p\[3\]"),
        (lotka_volterra_vjp_past_the_end, pe.ModelError, "past the end"),
        (lotka_volterra, TypeError, "must take 6 arguments"),
        ("not a function", TypeError, "`vjp` must be a callable"),
    ],
)
def test_a_wrong_user_vjp_is_refused(user_vjp, error, match):
    with pytest.raises(error, match=match):
        pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P, vjp=user_vjp)


# ----------------------------------------------------------------------------------------
# checkpoints


def decay(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]


@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "auto"])
@pytest.mark.parametrize("checkpoints", [1, 7, 50, 100_000])
def test_checkpoints_give_the_same_gradient(lv, cotangent, method, checkpoints):
    """Replaying each segment from its snapshot takes exactly the same steps: the gradient
    is the stored one to rounding (measured: identical)."""
    options = dict(method=method, rtol=1e-6, atol=1e-8, sens_y0=["prey", "predator"])
    stored = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(), **options)
    replayed = pe.vjp(lv, T_EVAL, cotangent,
                      sensitivity=pe.DiscreteAdjoint(checkpoints=checkpoints), **options)
    assert _relative(replayed, stored) < 1e-13


def test_checkpoints_with_fixed_steps(lv, cotangent):
    options = dict(method="RK4", dt=0.01, sens_y0=["prey"])
    replayed = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.DiscreteAdjoint(checkpoints=3),
                      **options)
    complex_step = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.ComplexStep(), **options)
    assert _relative(replayed, complex_step) < 1e-12


def _peak_bytes(function):
    import tracemalloc

    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_checkpoints_bound_the_memory():
    """1e4 and 1e6 fixed RK4 steps of y' = -p y: stored, the steps take (s + 1) n = 5
    numbers each (0.4 MB at 1e4 steps, 40 MB at 1e6); with a checkpoint every 1000 steps
    the peak stays near 1000 steps plus a snapshot per segment (measured 0.2-0.4 MB),
    and the gradient is exact: d y(1) / dp = -t y0 exp(-p t) at p = 1, t = 1."""
    problem = pe.ODEProblem(decay, [1.0], (0.0, 1.0), [1.0])
    exact = -np.exp(-1.0)
    for n_steps in (10_000, 1_000_000):
        def gradient(checkpoints, n_steps=n_steps):
            return pe.vjp(problem, [1.0], np.ones((1, 1)), method="RK4", dt=1.0 / n_steps,
                          max_steps=2 * n_steps,
                          sensitivity=pe.DiscreteAdjoint(checkpoints=checkpoints))

        gradient(1000)  # compiled and warm outside the measurement
        checkpointed, peak = _peak_bytes(lambda g=gradient: g(1000))
        assert checkpointed[0] == pytest.approx(exact, rel=1e-9)
        assert peak < 1.5e6, (n_steps, peak)
        if n_steps == 10_000:  # storing every step: the memory grows with the steps
            stored, stored_peak = _peak_bytes(lambda g=gradient: g(None))
            assert stored_peak > 0.3e6
            np.testing.assert_allclose(checkpointed, stored, rtol=1e-13)


# ----------------------------------------------------------------------------------------
# sensitivity="auto" in vjp


def test_auto_takes_forward_for_few_columns(lv, cotangent):
    """Lotka-Volterra with 4 parameters is below the measured crossover (k >= 6)."""
    gradient = pe.vjp(lv, T_EVAL, cotangent, method="Tsit5")
    assert isinstance(gradient, pe.Gradient) and isinstance(gradient, np.ndarray)
    assert isinstance(gradient.sensitivity, pe.Forward)
    forward = pe.vjp(lv, T_EVAL, cotangent, method="Tsit5", sensitivity=pe.Forward())
    np.testing.assert_array_equal(gradient, forward)
    assert isinstance(forward.sensitivity, pe.Forward)


def test_auto_takes_the_adjoint_with_a_user_vjp(cotangent):
    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P, vjp=lotka_volterra_vjp)
    gradient = pe.vjp(problem, T_EVAL, cotangent, method="Tsit5")
    assert isinstance(gradient.sensitivity, pe.DiscreteAdjoint)
    one_column = pe.vjp(problem, T_EVAL, cotangent, method="Tsit5", sens_params=[0])
    assert isinstance(one_column.sensitivity, pe.Forward)


def test_auto_takes_the_adjoint_for_many_columns():
    """20 states, 20 rates and 20 initial states: 40 columns >= max(6, n / 2)."""
    problem = pe.ODEProblem(LINEAR20.fun, LINEAR20.y0, LINEAR20.t_span, LINEAR20.p)
    weights = np.random.default_rng(3).standard_normal((20, LINEAR20.t_eval.size))
    gradient = pe.vjp(problem, LINEAR20.t_eval, weights, sens_y0=list(range(20)))
    assert isinstance(gradient.sensitivity, pe.DiscreteAdjoint)
    forward = pe.vjp(problem, LINEAR20.t_eval, weights, sens_y0=list(range(20)),
                     sensitivity=pe.Forward())
    assert _relative(gradient, forward) < 1e-5  # both to the solver's tolerance (1e-6)


def test_auto_on_a_stiff_problem():
    """Robertson with 6 columns: the discrete adjoint with a Rosenbrock method (measured
    cheaper from k = 4 on), Forward for 3 columns; with method="auto", which switches,
    Forward (its solve switches at t = 2 rather than 10: the adjoint would cost 2-4x);
    asked for outright, the discrete adjoint follows the switches."""
    stiff = pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, 1e3), [0.04, 3e7, 1e4])
    weights = np.ones((3, 2))
    options = dict(sens_y0=[0, 1, 2], rtol=1e-8, atol=1e-12)
    forward = pe.vjp(stiff, [1.0, 1e3], weights, sensitivity=pe.Forward(), **options)
    gradient = pe.vjp(stiff, [1.0, 1e3], weights, method="Rodas5P", **options)
    assert isinstance(gradient.sensitivity, pe.DiscreteAdjoint)
    assert _relative(gradient, forward) < 1e-6
    switching = pe.vjp(stiff, [1.0, 1e3], weights, method="auto", **options)
    assert isinstance(switching.sensitivity, pe.Forward)
    np.testing.assert_array_equal(switching, forward)
    followed = pe.vjp(stiff, [1.0, 1e3], weights, method="auto",
                      sensitivity=pe.DiscreteAdjoint(), **options)
    assert _relative(followed, forward) < 1e-6
    few = pe.vjp(stiff, [1.0, 1e3], weights, method="Rodas5P", rtol=1e-8, atol=1e-12)
    assert isinstance(few.sensitivity, pe.Forward)
    with pytest.raises(ValueError, match="'auto' or a sensitivity method"):
        pe.vjp(stiff, [1.0], np.ones((3, 1)), sensitivity="adjoint")


# ----------------------------------------------------------------------------------------
# Rosenbrock discrete adjoint: the transpose of the tangent-linear step


ROSENBROCK = ["Rodas5P", "Rodas4", "Rosenbrock23"]


@pytest.fixture(scope="module")
def robertson_problem():
    return pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, 1e3), [0.04, 3e7, 1e4])


ROBERTSON_T = np.logspace(-3, 3, 12)
ROBERTSON_W = np.random.default_rng(11).standard_normal((3, 12))


@pytest.mark.parametrize("method", ROSENBROCK)
def test_rosenbrock_equals_the_discrete_tangent_linear_model(robertson_problem, method):
    """Forward(error_control=False) takes the same steps and differentiates them with the
    method's tangent-linear model: the adjoint is its transpose (measured 5e-15 to 6e-13;
    both carry the ~1e-10 error of their second-derivative differences)."""
    options = dict(method=method, rtol=1e-8, atol=1e-12, sens_y0=[0, 1])
    adjoint = pe.vjp(robertson_problem, ROBERTSON_T, ROBERTSON_W,
                     sensitivity=pe.DiscreteAdjoint(), **options)
    forward = pe.vjp(robertson_problem, ROBERTSON_T, ROBERTSON_W,
                     sensitivity=pe.Forward(error_control=False), **options)
    assert _relative(adjoint, forward) < 1e-9
    checkpointed = pe.vjp(robertson_problem, ROBERTSON_T, ROBERTSON_W,
                          sensitivity=pe.DiscreteAdjoint(checkpoints=7), **options)
    np.testing.assert_allclose(checkpointed, adjoint, rtol=1e-13)


def forced(t, y, p, dydt):
    # non-autonomous and stiff-ish: exercises the f_t term of the Rosenbrock transpose
    dydt[0] = -p[0] * y[0] + p[1] * np.sin(3.0 * t) * y[1]
    dydt[1] = -p[2] * y[1] * y[1] + np.cos(t)


@pytest.mark.parametrize("method", ROSENBROCK)
def test_rosenbrock_fixed_steps_against_differences_of_the_solve(method):
    """Fixed steps: the discrete solution is a smooth function of (p, y0), so central
    differences of whole solves check the adjoint, time derivative term included."""
    problem = pe.ODEProblem(forced, [1.0, 0.5], (0.0, 2.0), [50.0, 2.0, 1.5])
    times = np.linspace(0.1, 2.0, 9)
    weights = np.random.default_rng(5).standard_normal((2, times.size))
    options = dict(method=method, dt=0.02, sens_y0=[0, 1])
    adjoint = pe.vjp(problem, times, weights, sensitivity=pe.DiscreteAdjoint(), **options)
    differences = pe.vjp(problem, times, weights, sensitivity=pe.FiniteDifferences(),
                         **options)
    assert _relative(adjoint, differences) < 1e-6


# ----------------------------------------------------------------------------------------
# the continuous adjoints


CONTINUOUS = [pe.Adjoint(), pe.Adjoint(checkpoints=20), pe.BacksolveAdjoint()]


@pytest.mark.parametrize("method", ["Tsit5", "DP5", "Vern7"])
@pytest.mark.parametrize("sensitivity", CONTINUOUS, ids=repr)
def test_continuous_adjoints_agree_with_forward(lv, cotangent, method, sensitivity):
    """The derivative of the exact solution to the tolerances of both passes (measured
    3e-10 to 8e-10 at rtol 1e-10), parameters and initial states."""
    options = dict(method=method, rtol=1e-10, atol=1e-12, sens_y0=["prey", "predator"])
    adjoint = pe.vjp(lv, T_EVAL, cotangent, sensitivity=sensitivity, **options)
    forward = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.Forward(), **options)
    assert _relative(adjoint, forward) < 1e-7
    assert adjoint.sensitivity is sensitivity
    if method == "Tsit5":  # central differences of whole solves: ~1e-6 at best
        differences = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.FiniteDifferences(),
                             **options)
        assert _relative(adjoint, differences) < 5e-6


@pytest.mark.parametrize("sensitivity", CONTINUOUS, ids=repr)
def test_continuous_adjoints_on_the_linear_chain(sensitivity):
    """20 states, 20 rates, 20 initial states against matrix exponentials."""
    problem = pe.ODEProblem(LINEAR20.fun, LINEAR20.y0, LINEAR20.t_span, LINEAR20.p)
    _, S_p, S_y0 = LINEAR20.exact()
    weights = np.random.default_rng(3).standard_normal((20, LINEAR20.t_eval.size))
    exact = np.concatenate([np.einsum("it,ikt->k", weights, S_p),
                            np.einsum("it,ikt->k", weights, S_y0)])
    adjoint = pe.vjp(problem, LINEAR20.t_eval, weights, method="Tsit5", rtol=1e-10,
                     atol=1e-12, sensitivity=sensitivity, sens_y0=list(range(20)))
    assert _relative(adjoint, exact) < 1e-7


@pytest.mark.parametrize("method", ["Rodas5P", "Rodas4", "auto"])
def test_continuous_adjoint_on_a_stiff_problem(robertson_problem, method):
    """Robertson: lambda integrated back with the Rosenbrock method (its Jacobian -J^T
    from the model's complex-step Jacobian at the interpolated state); measured 2e-8
    against Forward at rtol 1e-8."""
    options = dict(method=method, rtol=1e-8, atol=1e-12, sens_y0=[0, 1])
    forward = pe.vjp(robertson_problem, ROBERTSON_T, ROBERTSON_W, sensitivity=pe.Forward(),
                     **options)
    for sensitivity in (pe.Adjoint(), pe.Adjoint(checkpoints=10)):
        if method == "auto" and sensitivity.checkpoints:
            continue
        adjoint = pe.vjp(robertson_problem, ROBERTSON_T, ROBERTSON_W,
                         sensitivity=sensitivity, **options)
        assert _relative(adjoint, forward) < 1e-6, sensitivity


def stiff_linear(t, y, p, dydt):
    # a fast mode (rate p0 = 200) feeding a slow one: fine forwards with Tsit5 (its steps
    # limited by stability), but re-solved backwards the fast mode grows like exp(200 t)
    dydt[0] = -p[0] * y[0] + 1.0
    dydt[1] = p[1] * y[0] - p[2] * y[1]


def test_backsolve_fails_on_a_stiff_problem_where_the_checkpointed_adjoint_does_not():
    problem = pe.ODEProblem(stiff_linear, [1.0, 0.0], (0.0, 5.0), [200.0, 3.0, 0.5])
    times = np.linspace(0.5, 5.0, 10)
    weights = np.ones((2, times.size))
    options = dict(method="Tsit5", rtol=1e-8, atol=1e-10, max_steps=200_000)
    forward = pe.vjp(problem, times, weights, sensitivity=pe.Forward(), **options)
    checkpointed = pe.vjp(problem, times, weights, sensitivity=pe.Adjoint(checkpoints=50),
                          **options)
    assert _relative(checkpointed, forward) < 1e-6
    try:
        backsolve = pe.vjp(problem, times, weights, sensitivity=pe.BacksolveAdjoint(),
                           **options)
    except pe.SolveError as error:
        assert "unstable backwards" in str(error)
    else:
        assert _relative(backsolve, forward) > 1e-2


def test_continuous_adjoint_failures_raise(lv, cotangent):
    with pytest.raises(pe.SolveError, match="failed"):
        pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.Adjoint(), method="Tsit5", max_steps=5)
    with pytest.raises(pe.SolveError, match="failed"):
        pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.BacksolveAdjoint(), method="Tsit5",
               max_steps=5)


def test_backward_tolerances_are_the_adjoints_own(lv, cotangent):
    options = dict(method="Tsit5", rtol=1e-10, atol=1e-12)
    forward = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.Forward(), **options)
    loose = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.Adjoint(rtol=1e-4, atol=1e-6),
                   **options)
    tight = pe.vjp(lv, T_EVAL, cotangent, sensitivity=pe.Adjoint(), **options)
    assert _relative(tight, forward) < _relative(loose, forward)
    assert _relative(loose, forward) < 1e-2


def test_user_vjp_in_the_continuous_adjoint(cotangent):
    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 10.0), LV_P, vjp=lotka_volterra_vjp)
    options = dict(method="Tsit5", rtol=1e-10, atol=1e-12, sens_y0=[0, 1])
    forward = pe.vjp(problem, T_EVAL, cotangent, sensitivity=pe.Forward(), **options)
    for sensitivity in CONTINUOUS:
        adjoint = pe.vjp(problem, T_EVAL, cotangent, sensitivity=sensitivity, **options)
        assert _relative(adjoint, forward) < 1e-7


def test_continuous_adjoint_memory_is_bounded_by_the_checkpoints():
    """1e4 and 1e6 fixed RK4 steps: stored, the forward steps alone would take 0.4 MB and
    40 MB; with a checkpoint every 1000 steps the peak stays near 1000 steps plus a
    snapshot per segment (and the adjoint's quadrature chunk), and the gradient is right:
    d y(1) / dp = -exp(-1) at p = 1."""
    problem = pe.ODEProblem(decay, [1.0], (0.0, 1.0), [1.0])
    for n_steps in (10_000, 1_000_000):
        def gradient(n_steps=n_steps):
            return pe.vjp(problem, [1.0], np.ones((1, 1)), method="RK4", dt=1.0 / n_steps,
                          max_steps=2 * n_steps, sensitivity=pe.Adjoint(checkpoints=1000))

        gradient()
        result, peak = _peak_bytes(gradient)
        assert result[0] == pytest.approx(-np.exp(-1.0), rel=1e-9)
        assert peak < 1.5e6, (n_steps, peak)
