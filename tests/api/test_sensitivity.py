"""Sensitivities through solve() and vjp(): accuracy of every method against finite
differences and exact values, column selection, dense output, failures, bad arguments."""

import warnings

import numpy as np
import pytest

import paramest as pe
from paramest import ComplexStepWarning
from tests.problems import LINEAR20, LV_P, LV_Y0, lotka_volterra

ADAPTIVE = ["Tsit5", "DP5", "BS3", "Vern7", "Rodas5P", "Rodas4", "Rosenbrock23"]
EXPLICIT_ADAPTIVE = ["Tsit5", "DP5", "BS3", "Vern7"]
ROSENBROCK = ["Rodas5P", "Rodas4", "Rosenbrock23"]
#: options of the methods on Lotka–Volterra: tolerances, or fixed steps for RK4 / Euler
LV_OPTIONS = {
    **{name: dict(rtol=1e-10, atol=1e-12) for name in [*ADAPTIVE, "auto"]},
    "RK4": dict(dt=0.01),
    "Euler": dict(dt=1e-3),
}
LV_T_EVAL = np.array([0.5, 1.0, 1.5, 2.0])
ROBERTSON_P = (0.04, 3e7, 1e4)
ROBERTSON_T_EVAL = np.logspace(-4, 5, 10)


def robertson(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + p[2] * y[1] * y[2]
    dydt[1] = p[0] * y[0] - p[2] * y[1] * y[2] - p[1] * y[1] ** 2
    dydt[2] = p[1] * y[1] ** 2


def lotka_volterra_jac(t, y, p, J):
    J[0, 0] = p[0] - p[1] * y[1]
    J[0, 1] = -p[1] * y[0]
    J[1, 0] = p[3] * y[1]
    J[1, 1] = -p[2] + p[3] * y[0]


def lotka_volterra_abs(t, y, p, dydt):
    # abs() of a state that stays positive: the same solution, but the complex step of
    # abs is wrong, so the derivatives must come from central differences
    dydt[0] = p[0] * abs(y[0]) - p[1] * y[0] * y[1]
    dydt[1] = -p[2] * y[1] + p[3] * y[0] * y[1]


def sqrt_source_abs(t, y, p, dydt):
    # y' = -|y| + sqrt(p): finite for p = 0, but d/dp sqrt(p) is infinite there (not
    # complex-step safe, so the sensitivity products are central differences: NaN at 0)
    dydt[0] = -abs(y[0]) + np.sqrt(p[0])


def flat_source(t, y, p, dydt):
    # y' = -y + exp(-1/p^2): 0 at p = 0 in real arithmetic, but the complex-step product
    # at p = i h evaluates exp(1/h^2), which overflows: a non-finite sensitivity
    dydt[0] = -y[0] + np.exp(-1.0 / (p[0] * p[0]))


def _relative(actual, expected):
    """Normwise relative difference max|actual - expected| / max|expected|."""
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def _rowwise_relative(actual, expected, y, threshold):
    """Largest error of ``actual`` against ``expected`` (both ``(n, k, T)``) relative to
    the size of the expected sensitivity of that state to that column over time, counting
    only entries whose state is above ``threshold`` (below it the state is noise at the
    tolerances). Returns ``(error, (state, column, time index))``."""
    mask = (np.abs(y) > threshold)[:, None, :]
    scale = np.max(np.where(mask, np.abs(expected), 0.0), axis=2, keepdims=True)
    assert np.all(scale > 0.0), "a sensitivity row of the reference is zero"
    error = np.where(mask, np.abs(actual - expected), 0.0) / scale
    where = np.unravel_index(np.argmax(error), error.shape)
    return float(error[where]), tuple(int(i) for i in where)


# ----------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 2.0), LV_P)


@pytest.fixture(scope="module")
def lv_named():
    return pe.ODEProblem(
        lotka_volterra, LV_Y0, (0.0, 2.0), LV_P, param_names=["alpha", "beta", "gamma", "delta"],
        state_names=["prey", "predator"],
    )


@pytest.fixture(scope="module")
def lv_reference(lv):
    """Forward sensitivities (all parameters, both initial states) by Vern7 at 1e-13."""
    ref = pe.solve(lv, "Vern7", t_eval=LV_T_EVAL, rtol=1e-13, atol=1e-14,
                   sensitivity=pe.Forward(), sens_y0=[0, 1])
    assert ref.success
    return ref


@pytest.fixture(scope="module")
def robertson_problem():
    return pe.ODEProblem(robertson, [1.0, 0.0, 0.0], (0.0, 1e5), ROBERTSON_P)


@pytest.fixture(scope="module")
def robertson_reference(robertson_problem):
    """Central differences of tight Rodas5P solves, columns p[0..2], y0[0..2].

    The step of each column is chosen for its truncation error: 1e-4 relative for the
    parameters, y0[0] and y0[2]; y0[1] starts at 0 and its natural scale is the
    quasi-steady y[1] ~ 4e-5, so it gets 1e-7 (1e-6 leaves a truncation error of 2e-4),
    with atol 1e-16 so that the solver's error stays far below that step."""
    main = pe.solve(robertson_problem, "Rodas5P", t_eval=ROBERTSON_T_EVAL, rtol=1e-10,
                    atol=1e-14, sensitivity=pe.FiniteDifferences(relative_step=1e-4),
                    sens_y0=[0, 2])
    middle = pe.solve(robertson_problem, "Rodas5P", t_eval=ROBERTSON_T_EVAL, rtol=1e-10,
                      atol=1e-16, sensitivity=pe.FiniteDifferences(relative_step=1e-7),
                      sens_params=[], sens_y0=[1])
    assert main.success and middle.success, (main.message, middle.message)
    assert main.sens_labels == ["p[0]", "p[1]", "p[2]", "y0[0]", "y0[2]"]
    assert middle.sens_labels == ["y0[1]"]
    sens = np.concatenate([main.sens[:, :4], middle.sens, main.sens[:, 4:]], axis=1)
    return main.y, sens


@pytest.fixture(scope="module")
def lv_abs():
    with pytest.warns(ComplexStepWarning, match="not complex-step safe"):
        problem = pe.ODEProblem(lotka_volterra_abs, LV_Y0, (0.0, 2.0), LV_P)
    assert not problem.complex_step_safe
    return problem


# ----------------------------------------------------------------------------------------
# accuracy


@pytest.mark.parametrize("method", list(LV_OPTIONS))
def test_every_method_agrees_with_finite_differences_on_lotka_volterra(lv, lv_reference,
                                                                        method):
    options = dict(t_eval=LV_T_EVAL, sens_y0=[0, 1], **LV_OPTIONS[method])
    forward = pe.solve(lv, method, sensitivity=pe.Forward(), **options)
    central = pe.solve(lv, method, sensitivity=pe.FiniteDifferences(), **options)
    assert forward.success and central.success
    assert forward.sens.shape == central.sens.shape == (2, 6, LV_T_EVAL.size)
    assert forward.sens_labels == central.sens_labels == [
        "p[0]", "p[1]", "p[2]", "p[3]", "y0[0]", "y0[1]"
    ]
    # central differences of this method's own solves: truncation (about 4e-8 here) and
    # solver error / step (1e-6 at most)
    difference = _relative(forward.sens, central.sens)
    assert difference < 1e-6, (method, difference)
    if method != "Euler":  # Euler's first-order error at dt = 1e-3 is about 1e-2
        # the methods agree with each other: all are close to one tight reference
        error = _relative(forward.sens, lv_reference.sens)
        assert error < 2e-7, (method, error)
        np.testing.assert_allclose(forward.y, lv_reference.y, rtol=1e-7)


@pytest.mark.parametrize("method", ["Rodas5P", "Rodas4", "auto"])
def test_stiff_methods_agree_with_finite_differences_on_robertson(
    robertson_problem, robertson_reference, method
):
    y_ref, sens_ref = robertson_reference
    sol = pe.solve(robertson_problem, method, t_eval=ROBERTSON_T_EVAL, rtol=1e-8, atol=1e-12,
                   sensitivity=pe.Forward(), sens_y0=[0, 1, 2])
    assert sol.success, (method, sol.message, sol.n_accepted)
    assert sol.sens_labels == ["p[0]", "p[1]", "p[2]", "y0[0]", "y0[1]", "y0[2]"]
    # the reference's own error is about 3e-6 (measured against a tighter Forward solve)
    error, where = _rowwise_relative(sol.sens, sens_ref, y_ref, threshold=1e-10)
    assert error < 2e-5, (method, error, "at (state, column, time)", where)
    # y1 + y2 + y3 is conserved: the columns sum to 0 (parameters) and 1 (initial states),
    # to rounding relative to each column's size (which ranges from 4e-9 to 6)
    drift = np.abs(sol.sens.sum(axis=0) - np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])[:, None])
    column_size = np.max(np.abs(sol.sens), axis=(0, 2))
    assert np.all(drift.max(axis=1) < 1e-10 * column_size), drift.max(axis=1) / column_size


@pytest.mark.parametrize("error_control", [True, False])
def test_auto_switches_and_carries_sensitivities_on_robertson(
    robertson_problem, robertson_reference, error_control
):
    """"auto" starts with Tsit5 and switches to Rodas5P once Robertson turns stiff; the
    augmented state (sensitivities included) carries over. With sensitivities the switch
    should come about when it comes without them (the stiffness is the model's)."""
    options = dict(t_eval=ROBERTSON_T_EVAL, rtol=1e-6, atol=1e-10)
    plain = pe.solve(robertson_problem, "auto", **options)
    assert plain.success and plain.switches
    sensitivity = pe.Forward(error_control=error_control)
    auto = pe.solve(robertson_problem, "auto", sensitivity=sensitivity, sens_y0=[0, 1, 2],
                    **options)
    assert auto.success, auto.message
    assert auto.switches and auto.switches[0][1:] == ("Tsit5", "Rodas5P"), auto.switches
    assert auto.stiffness_detected
    summary = (f"with sensitivities: first switch at t={auto.switches[0][0]:.4g} after "
               f"{auto.n_accepted} steps; without: t={plain.switches[0][0]:.4g} after "
               f"{plain.n_accepted} steps")
    assert auto.switches[0][0] < 10 * plain.switches[0][0], summary
    assert auto.n_accepted < 10 * plain.n_accepted, summary
    stiff = pe.solve(robertson_problem, "Rodas5P", sensitivity=sensitivity, sens_y0=[0, 1, 2],
                     **options)
    assert stiff.success
    y_ref, sens_ref = robertson_reference
    between, where = _rowwise_relative(auto.sens, stiff.sens, y_ref, threshold=1e-10)
    assert between < 1e-4, (between, where)
    error, where = _rowwise_relative(auto.sens, sens_ref, y_ref, threshold=1e-10)
    assert error < 1e-4, (error, where)


@pytest.fixture(scope="module")
def linear20():
    problem = pe.ODEProblem(LINEAR20.fun, LINEAR20.y0, LINEAR20.t_span, LINEAR20.p)
    return problem, LINEAR20.exact()


@pytest.mark.parametrize("method", [*ADAPTIVE, "auto"])
def test_linear_chain_matches_the_exact_sensitivities(linear20, method):
    """20 states, 20 rate parameters and the 20 initial states: 40 columns, against the
    exact S_p and S_y0 from matrix exponentials."""
    problem, (y, S_p, S_y0) = linear20
    sol = pe.solve(problem, method, t_eval=LINEAR20.t_eval, rtol=1e-8, atol=1e-10,
                   sensitivity=pe.Forward(), sens_y0=list(range(20)))
    assert sol.success
    assert sol.sens.shape == (20, 40, LINEAR20.t_eval.size)
    # measured: 1e-12 (Vern7) to 1e-9 (Rodas4) for the fourth- and higher-order methods,
    # 8e-9 for BS3, 6e-7 for the second-order Rosenbrock23
    bound = 2e-6 if method == "Rosenbrock23" else 1e-7
    errors = {
        "S_p": _relative(sol.sens[:, :20], S_p),
        "S_y0": _relative(sol.sens[:, 20:], S_y0),
        "y": _relative(sol.y, y),
    }
    assert max(errors.values()) < bound, (method, errors)


@pytest.mark.parametrize("method", ROSENBROCK)
def test_a_user_jacobian_gives_the_same_sensitivities(lv, method):
    with_jac = pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 2.0), LV_P, jac=lotka_volterra_jac)
    options = dict(t_eval=LV_T_EVAL, rtol=1e-8, atol=1e-10, sensitivity=pe.Forward(),
                   sens_y0=[0, 1])
    a = pe.solve(lv, method, **options)
    b = pe.solve(with_jac, method, **options)
    assert a.success and b.success and b.njev > 0
    difference = _relative(b.sens, a.sens)
    assert difference < 1e-9, (method, difference)


@pytest.mark.filterwarnings("ignore:The stiff solver uses central-difference Jacobians")
@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "Rodas5P", "Rodas4", "auto"])
def test_a_model_that_is_not_complex_step_safe(lv_abs, lv_reference, method):
    """Forward() falls back to central differences for the sensitivity products (and the
    Rosenbrock coupling); the results still match finite differences of whole solves."""
    options = dict(t_eval=LV_T_EVAL, rtol=1e-10, atol=1e-12, sens_y0=[0, 1])
    forward = pe.solve(lv_abs, method, sensitivity=pe.Forward(), **options)
    central = pe.solve(lv_abs, method, sensitivity=pe.FiniteDifferences(), **options)
    assert forward.success and central.success
    difference = _relative(forward.sens, central.sens)
    assert difference < 1e-5, (method, difference)
    error = _relative(forward.sens, lv_reference.sens)
    assert error < 1e-6, (method, error)


def test_complex_step_refuses_a_model_that_is_not_complex_step_safe(lv_abs):
    with pytest.raises(ValueError, match="complex-step safe.*Forward"):
        pe.solve(lv_abs, "Tsit5", t_eval=LV_T_EVAL, sensitivity=pe.ComplexStep())


# ----------------------------------------------------------------------------------------
# vjp


def test_vjp_is_the_cotangent_contracted_with_the_sensitivities(lv):
    t_eval = np.linspace(0.0, 2.0, 9)
    cotangent = np.random.default_rng(1).normal(size=(2, 9))
    options = dict(rtol=1e-9, atol=1e-11)
    gradient = pe.vjp(lv, t_eval, cotangent, sens_params=[3, 1], sens_y0=[0], **options)
    sol = pe.solve(lv, "auto", t_eval, sensitivity=pe.Forward(), sens_params=[3, 1],
                   sens_y0=[0], **options)
    assert gradient.shape == (3,)
    np.testing.assert_allclose(gradient, np.einsum("it,ikt->k", cotangent, sol.sens),
                               rtol=1e-12, atol=1e-14)
    # the default columns are all parameters (under error control other columns mean
    # other steps, so the shared ones agree to the solve's accuracy); another sensitivity
    # method gives the same gradient
    full = pe.vjp(lv, t_eval, cotangent, **options)
    assert full.shape == (4,)
    np.testing.assert_allclose(full[[3, 1]], gradient[:2], rtol=1e-7)
    central = pe.vjp(lv, t_eval, cotangent, sensitivity=pe.FiniteDifferences(),
                     method="Vern7", rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(full, central, rtol=1e-6)


def test_vjp_raises_when_the_solve_fails(lv):
    t_eval = np.linspace(0.0, 2.0, 5)
    with pytest.raises(pe.SolveError, match="max_steps=5") as info:
        pe.vjp(lv, t_eval, np.ones((2, 5)), max_steps=5)
    assert info.value.solution is not None and not info.value.solution.success


@pytest.mark.parametrize("cotangent", [np.ones((2, 4)), np.ones((5, 2)), np.ones(10)])
def test_vjp_refuses_a_cotangent_of_the_wrong_shape(lv, cotangent):
    with pytest.raises(ValueError, match=r"`cotangent` must have shape .* \(2, 5\)"):
        pe.vjp(lv, np.linspace(0.0, 2.0, 5), cotangent)


def test_vjp_needs_t_eval(lv):
    with pytest.raises(ValueError, match="`t_eval` is required"):
        pe.vjp(lv, None, np.ones((2, 5)))


# ----------------------------------------------------------------------------------------
# columns


def test_columns_by_index_and_by_name(lv, lv_named, lv_reference):
    options = dict(t_eval=LV_T_EVAL, rtol=1e-10, atol=1e-12, sensitivity=pe.Forward())
    by_index = pe.solve(lv, "Tsit5", sens_params=[2, -4], sens_y0=[1], **options)
    assert by_index.sens_labels == ["p[2]", "p[0]", "y0[1]"]
    by_name = pe.solve(lv_named, "Tsit5", sens_params=["gamma", "alpha"],
                       sens_y0="predator", **options)
    assert by_name.sens_labels == ["gamma", "alpha", "y0[predator]"]
    mixed = pe.solve(lv_named, "Tsit5", sens_params=["gamma", 0], sens_y0=[-1], **options)
    assert mixed.sens_labels == ["gamma", "alpha", "y0[predator]"]
    for sol in (by_index, by_name, mixed):
        assert sol.sens.shape == (2, 3, LV_T_EVAL.size)
        # the columns of the full solve, in the order asked for (reference: p0..p3, y0)
        np.testing.assert_allclose(sol.sens, lv_reference.sens[:, [2, 0, 5]], rtol=0,
                                   atol=1e-8)
    np.testing.assert_array_equal(by_index.sens, by_name.sens)
    only_y0 = pe.solve(lv, "Tsit5", sens_params=[], sens_y0=[0, 1], **options)
    assert only_y0.sens_labels == ["y0[0]", "y0[1]"]
    np.testing.assert_allclose(only_y0.sens, lv_reference.sens[:, 4:], rtol=0, atol=1e-8)
    default = pe.solve(lv_named, "Tsit5", **options)
    assert default.sens_labels == ["alpha", "beta", "gamma", "delta"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(sens_params=[1, 1]), ValueError, "`sens_params` names a parameter twice"),
        (dict(sens_params=[0, -4]), ValueError, "`sens_params` names a parameter twice"),
        (dict(sens_y0=["prey", 0]), ValueError, "`sens_y0` names a state twice"),
        (dict(sens_params=["alpha", "epsilon"]), ValueError,
         "`sens_params`: unknown parameter 'epsilon'"),
        (dict(sens_y0=["wolf"]), ValueError, "`sens_y0`: unknown state 'wolf'"),
        (dict(sens_params=[4]), ValueError, "`sens_params`: index 4 is out of range"),
        (dict(sens_params=[-5]), ValueError, "`sens_params`: index -5 is out of range"),
        (dict(sens_y0=[2]), ValueError, "`sens_y0`: index 2 is out of range for 2 states"),
        (dict(sens_params=[0.5]), TypeError, "`sens_params` entries must be indices or names"),
        (dict(sens_params=[True]), TypeError, "got a bool"),
    ],
)
def test_bad_columns(lv_named, kwargs, error, match):
    with pytest.raises(error, match=match):
        pe.solve(lv_named, "Tsit5", t_eval=LV_T_EVAL, sensitivity=pe.Forward(), **kwargs)


def test_names_need_the_problem_names(lv):
    with pytest.raises(ValueError, match="names parameters .*'alpha'.* no `param_names`"):
        pe.solve(lv, "Tsit5", t_eval=LV_T_EVAL, sensitivity=pe.Forward(), sens_params="alpha")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(sens_params=[0]), ValueError, "pass `sensitivity=` as well"),
        (dict(sens_y0=[0]), ValueError, "pass `sensitivity=` as well"),
        (dict(sensitivity="forward"), TypeError, "`sensitivity` must be None or a sensitivity"),
        (dict(sensitivity=pe.Forward), TypeError, "`sensitivity` must be None or a sensitivity"),
        (dict(method="Rodas5P", sensitivity=pe.ComplexStep()), ValueError,
         "ComplexStep.*explicit method.*'Rodas5P'.*Forward"),
        (dict(method="auto", sensitivity=pe.ComplexStep()), ValueError,
         "ComplexStep.*explicit method.*'auto'.*Forward"),
        (dict(t_eval=None, sensitivity=pe.FiniteDifferences()), ValueError,
         "FiniteDifferences.*needs `t_eval`"),
        (dict(dense_output=True, sensitivity=pe.FiniteDifferences()), ValueError,
         "FiniteDifferences.*no dense output"),
    ],
)
def test_bad_sensitivity_arguments(lv, kwargs, error, match):
    arguments = dict(method="Tsit5", t_eval=LV_T_EVAL)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        pe.solve(lv, **arguments)


def test_sensitivity_options():
    assert pe.Forward().error_control is True
    assert pe.Forward(error_control=np.bool_(False)).error_control is False
    with pytest.raises(TypeError, match="`error_control` must be True or False, got int"):
        pe.Forward(error_control=1)
    with pytest.raises(TypeError, match="`error_control` must be True or False, got str"):
        pe.Forward("yes")
    assert pe.FiniteDifferences().relative_step == 1e-4
    for bad in (0, 0.0, -1e-4, 1.0, np.inf):
        with pytest.raises(ValueError, match=r"`relative_step` must be in \(0, 1\)"):
            pe.FiniteDifferences(relative_step=bad)
    with pytest.raises(TypeError, match="`relative_step` must be a real number"):
        pe.FiniteDifferences(relative_step="1e-4")
    assert repr(pe.Forward()) == "Forward(error_control=True)"
    assert repr(pe.Forward(error_control=False)) == "Forward(error_control=False)"
    assert repr(pe.ComplexStep()) == "ComplexStep()"
    assert repr(pe.FiniteDifferences(relative_step=1e-5)) == (
        "FiniteDifferences(relative_step=1e-05)"
    )
    for option in (pe.Forward(), pe.ComplexStep(), pe.FiniteDifferences()):
        assert isinstance(option, pe.SensitivityMethod)


# ----------------------------------------------------------------------------------------
# output layout: dense output, every step


@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "Rodas5P", "Rosenbrock23"])
def test_dense_output_of_the_sensitivities(lv, lv_reference, method):
    options = dict(rtol=1e-10, atol=1e-12, sensitivity=pe.Forward(), sens_y0=[0, 1])
    dense = pe.solve(lv, method, dense_output=True, **options)
    assert dense.success and isinstance(dense.sol, pe.DenseOutput)
    queries = np.linspace(0.0, 2.0, 13)  # mostly between steps
    states = dense.sol(queries)
    sens = dense.sol.sens(queries)
    assert states.shape == (2, 13) and sens.shape == (2, 6, 13)
    assert dense.sol(1.3).shape == (2,) and dense.sol.sens(1.3).shape == (2, 6)
    # the same interpolant as t_eval outputs of the same steps
    at_times = pe.solve(lv, method, t_eval=queries, **options)
    np.testing.assert_allclose(sens, at_times.sens, rtol=0, atol=1e-12)
    np.testing.assert_allclose(states, at_times.y, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(sens[:, :, 0], np.hstack([np.zeros((2, 4)), np.eye(2)]))
    # and accurate between steps (the interpolant's order is below the method's)
    inside = dense.sol.sens(LV_T_EVAL)
    error = _relative(inside, lv_reference.sens)
    assert error < 1e-6, (method, error)
    np.testing.assert_allclose(dense.sol.sens(1.3), dense.sol.sens(np.array([1.3]))[:, :, 0])


def test_dense_output_of_auto_across_the_switch(robertson_problem, robertson_reference):
    y_ref, sens_ref = robertson_reference
    sol = pe.solve(robertson_problem, "auto", rtol=1e-6, atol=1e-10, dense_output=True,
                   sensitivity=pe.Forward(), sens_y0=[0, 1, 2])
    assert sol.success and sol.switches
    sens = sol.sol.sens(ROBERTSON_T_EVAL)
    assert sens.shape == (3, 6, ROBERTSON_T_EVAL.size)
    error, where = _rowwise_relative(sens, sens_ref, y_ref, threshold=1e-10)
    assert error < 1e-4, (error, where)
    # continuous where the method changes: no jump beyond the slope over 2e-9 t
    t_switch = sol.switches[0][0]
    before = sol.sol.sens(t_switch * (1.0 - 1e-9))
    after = sol.sol.sens(t_switch * (1.0 + 1e-9))
    assert np.max(np.abs(after - before)) < 1e-6 * np.max(np.abs(before)), t_switch
    # every step's output is the dense output at that step
    np.testing.assert_allclose(sol.sol.sens(sol.t), sol.sens, rtol=0,
                               atol=1e-12 * np.max(np.abs(sol.sens)))


def test_dense_sens_needs_a_solve_with_sensitivities(lv):
    plain = pe.solve(lv, "Tsit5", dense_output=True)
    assert plain.sens is None and plain.sens_labels == []
    with pytest.raises(ValueError, match="this solve has no sensitivities"):
        plain.sol.sens(1.0)


@pytest.mark.parametrize("method", ["Tsit5", "Rodas5P", "RK4"])
def test_every_step_output_has_sensitivities(lv, method):
    options = dict(dt=0.05) if method == "RK4" else dict(rtol=1e-8, atol=1e-10)
    sol = pe.solve(lv, method, sensitivity=pe.Forward(), sens_params=[1], sens_y0=[0, 1],
                   **options)
    assert sol.success
    n_times = sol.t.size
    assert n_times == sol.n_accepted + 1 and sol.y.shape == (2, n_times)
    assert sol.sens.shape == (2, 3, n_times)
    np.testing.assert_array_equal(sol.sens[:, :, 0], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # the same steps with the same times as t_eval give the same numbers
    at_steps = pe.solve(lv, method, t_eval=sol.t, sensitivity=pe.Forward(), sens_params=[1],
                        sens_y0=[0, 1], **options)
    np.testing.assert_allclose(sol.sens, at_steps.sens, rtol=0,
                               atol=1e-12 * np.max(np.abs(sol.sens)))


# ----------------------------------------------------------------------------------------
# failures


@pytest.mark.parametrize("error_control", [True, False])
@pytest.mark.parametrize(
    ("model", "method"),
    [
        ("sqrt_source_abs", "Tsit5"),
        ("sqrt_source_abs", "Rodas5P"),
        ("sqrt_source_abs", "auto"),
        # explicit only: a Rosenbrock method's complex-step Jacobian of this model divides
        # by the complex zero p^2 at p = 0, which fails the plain solve already
        ("flat_source", "Tsit5"),
    ],
)
def test_a_non_finite_sensitivity_fails_the_solve(model, method, error_control):
    """The state stays finite (the plain solve succeeds) but the sensitivity is not:
    the solve must fail rather than return NaN or inf with success=True."""
    fun = {"sqrt_source_abs": sqrt_source_abs, "flat_source": flat_source}[model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComplexStepWarning)  # sqrt_source_abs: abs()
        problem = pe.ODEProblem(fun, [1.0], (0.0, 1.0), [1.0])  # checked where finite
        plain = pe.solve(problem, method, t_eval=[0.5, 1.0], p=[0.0])
        assert plain.success and np.all(np.isfinite(plain.y))
        sensitivity = pe.Forward(error_control=error_control)
        for t_eval in ([0.5, 1.0], None):
            sol = pe.solve(problem, method, t_eval=t_eval, p=[0.0], sensitivity=sensitivity)
            assert not sol.success, (model, method, error_control, t_eval, sol.sens)
            assert sol.status < 0 and "non-finite" in sol.message, sol.message
            assert np.all(np.isfinite(sol.sens)), "non-finite values reported as outputs"


def _forced_decay(t, y, p, dydt):
    dydt[0] = -p[0] * y[0] + np.sin(t)


@pytest.mark.parametrize("method", ["Tsit5", "Rodas5P", "auto"])
def test_backward_integration_of_a_time_dependent_model(method):
    """t_span running backwards, and f reading t (the Rosenbrock tangent-linear model's
    d/dt terms): exact values dy/dp and dy/dy0 of y' = -k y + sin t from y(1) = 2."""
    problem = pe.ODEProblem(_forced_decay, [2.0], (1.0, 0.0), [0.5])
    sol = pe.solve(problem, method, t_eval=[0.5, 0.0], rtol=1e-10, atol=1e-12,
                   sensitivity=pe.Forward(), sens_y0=[0])
    assert sol.success, sol.message
    # y(t) = e^{-k(t-1)} (2 - c(1)) + c(t), c(t) = (k sin t - cos t) / (1 + k^2)
    k = 0.5

    def c(t, k):
        return (k * np.sin(t) - np.cos(t)) / (1.0 + k * k)

    def y(t, k):
        return np.exp(-k * (t - 1.0)) * (2.0 - c(1.0, k)) + c(t, k)

    t = np.array([0.5, 0.0])
    h = 1e-6
    dy_dk = (y(t, k + h) - y(t, k - h)) / (2 * h)
    dy_dy0 = np.exp(-k * (t - 1.0))
    np.testing.assert_allclose(sol.y[0], y(t, k), rtol=1e-8)
    np.testing.assert_allclose(sol.sens[0, 0], dy_dk, rtol=1e-7)
    np.testing.assert_allclose(sol.sens[0, 1], dy_dy0, rtol=1e-8)
