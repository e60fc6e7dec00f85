"""paramest.Objective: residuals, their Jacobian (parameters, initial states, per-experiment
entries, observables) against central differences, and the consistency of loss, gradient
and value_and_grad."""

import warnings

import numpy as np
import pytest

import paramest as pe
from paramest import ComplexStepWarning
from tests.problems import LV_P, LV_Y0, linear_chain_problem, lotka_volterra

LV_NAMES = dict(param_names=["alpha", "beta", "gamma", "delta"],
                state_names=["prey", "predator"])
T = np.linspace(0.5, 4.0, 8)
#: tight solves for the finite-difference checks: the solver's error divided by the
#: difference step must stay far below the 1e-6 asked of the Jacobian
TIGHT = dict(rtol=1e-12, atol=1e-14)


def scaled_and_total(t, y, p, out):
    # predator counts in arbitrary units (scale p[4], a parameter) and the total population
    out[0] = p[4] * y[1]
    out[1] = y[0] + y[1]


def abs_observable(t, y, p, out):
    # abs() of a positive state: the same values, but its complex step is wrong
    out[0] = p[4] * abs(y[1])
    out[1] = y[0] + y[1]


def blowup(t, y, p, dydt):
    # y' = a y^2, y(0) = 1: y = 1 / (1 - a t), infinite at t = 1 / a
    dydt[0] = p[0] * y[0] * y[0]


def _reference(problem, p=LV_P, y0=LV_Y0, t=T):
    sol = pe.solve(problem, t_eval=t, p=p, y0=y0, rtol=1e-12, atol=1e-14)
    assert sol.success
    return sol.y


def _central_jacobian(objective, x, relative_step=1e-4):
    """Central differences of ``objective.residuals``; with the tight solves, truncation
    (step^2 ~ 1e-8 of the third derivative) and solver error / step (~1e-10) stay well
    below the 1e-6 checked."""
    columns = []
    for i in range(x.size):
        h = relative_step * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        columns.append((objective.residuals(up) - objective.residuals(down)) / (2.0 * h))
    return np.column_stack(columns)


def _column_error(jac, reference):
    """Largest error of each column relative to that column's size."""
    return np.max(np.abs(jac - reference), axis=0) / np.max(np.abs(reference), axis=0)


# ----------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 4.0), LV_P, **LV_NAMES)


@pytest.fixture(scope="module")
def lv_scaled():
    """Lotka–Volterra with a fifth parameter, the scale of the first observable."""
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 4.0), [*LV_P, 2.0],
                         param_names=[*LV_NAMES["param_names"], "s"],
                         state_names=LV_NAMES["state_names"])


@pytest.fixture(scope="module")
def experiments(lv):
    """Two experiments: the second with its own initial state and delta, and a few values
    not measured."""
    rng = np.random.default_rng(7)
    first = _reference(lv) + 0.02 * rng.standard_normal((2, T.size))
    second = _reference(lv, p=[1.5, 1.0, 3.0, 1.3], y0=[2.0, 0.5])
    second = second + 0.02 * rng.standard_normal(second.shape)
    second[1, [2, 5]] = np.nan
    return [
        pe.Data(T, first, sigma=0.02, name="A"),
        pe.Data(T, second, sigma=[0.02, 0.04], name="B", y0={"prey": 2.0, "predator": 0.5},
                p={"delta": 1.3}),
    ]


@pytest.fixture(scope="module")
def objective(lv, experiments):
    return pe.Objective(lv, experiments, free_y0=True, local=["delta", "y0[prey]"], **TIGHT)


@pytest.fixture(scope="module")
def x_off(objective):
    """A point away from the optimum (non-zero residuals, so that J^T r is not small)."""
    return objective.x0 * np.linspace(0.9, 1.1, objective.n_free)


# ----------------------------------------------------------------------------------------
# set-up


def test_labels_start_and_sizes(objective, experiments):
    assert objective.labels == [
        "alpha", "beta", "gamma", "y0[predator]",
        "delta[A]", "y0[prey][A]", "delta[B]", "y0[prey][B]",
    ]
    assert objective.n_free == 8
    # the experiments' own values start their local entries; shared ones are the problem's
    np.testing.assert_array_equal(objective.x0, [1.5, 1.0, 3.0, 1.0, 1.0, 1.0, 1.3, 2.0])
    assert objective.n_residuals == sum(d.n_measured for d in experiments) == 2 * 16 - 2


def test_residuals_are_the_weighted_differences(lv, objective, experiments, x_off):
    """(model - data) / sigma at every measured value, from independent solves at the
    experiments' conditions (compared as a set: the order within an experiment is the
    objective's own)."""
    x = x_off
    shared = dict(alpha=x[0], beta=x[1], gamma=x[2], predator=x[3])
    expected = []
    for data, (delta, prey) in zip(experiments, [(x[4], x[5]), (x[6], x[7])], strict=True):
        p = [shared["alpha"], shared["beta"], shared["gamma"], delta]
        model = _reference(lv, p=p, y0=[prey, shared["predator"]])
        weighted = (model - data.y) / data.sigma
        expected.append(np.sort(weighted[data.measured]))
    residuals = objective.residuals(x)
    assert residuals.shape == (objective.n_residuals,)
    # experiments in order: A's 16 values, then B's 14
    for got, want in zip(np.split(residuals, [16]), expected, strict=True):
        np.testing.assert_allclose(np.sort(got), want, rtol=1e-7, atol=1e-7)


def test_loss_gradient_and_value_and_grad_agree(objective, x_off):
    r = objective.residuals(x_off)
    jac = objective.jacobian(x_off)
    assert jac.shape == (objective.n_residuals, objective.n_free)
    loss = objective.loss(x_off)
    assert loss == pytest.approx(0.5 * float(r @ r), rel=1e-14)
    gradient = objective.gradient(x_off)
    np.testing.assert_allclose(gradient, jac.T @ r, rtol=1e-13, atol=0.0)
    value, grad = objective.value_and_grad(x_off)
    assert value == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(grad, gradient, rtol=1e-13, atol=0.0)


def test_gradient_matches_central_differences_of_the_loss(objective, x_off):
    gradient = objective.gradient(x_off)
    central = np.empty_like(gradient)
    for i in range(x_off.size):
        h = 1e-5 * max(1.0, abs(x_off[i]))
        up, down = x_off.copy(), x_off.copy()
        up[i] += h
        down[i] -= h
        central[i] = (objective.loss(up) - objective.loss(down)) / (2.0 * h)
    np.testing.assert_allclose(gradient, central, rtol=1e-6, atol=1e-6 * np.abs(central).max())


def test_jacobian_matches_central_differences(objective, x_off):
    """Parameter, shared initial-state and per-experiment columns (the zero blocks of the
    other experiment's local entries included)."""
    jac = objective.jacobian(x_off)
    central = _central_jacobian(objective, x_off)
    error = _column_error(jac, central)
    assert np.all(error < 1e-6), dict(zip(objective.labels, error, strict=True))
    # a local entry of one experiment does not move the other experiment's residuals
    a, b = slice(0, 16), slice(16, None)
    assert np.all(jac[b, 4:6] == 0.0) and np.all(jac[a, 6:8] == 0.0)
    assert np.all(np.abs(jac[a, 4:6]).max(axis=0) > 0.1)


@pytest.mark.parametrize(
    "sensitivity, solver",
    # the complex step needs an explicit method ("auto" may switch to a Rosenbrock one)
    [(pe.FiniteDifferences(), "auto"), (pe.ComplexStep(), "Tsit5")],
    ids=["finite-differences", "complex-step"],
)
def test_other_sensitivity_methods_give_the_same_jacobian(lv, experiments, objective, x_off,
                                                          sensitivity, solver):
    other = pe.Objective(lv, experiments, free_y0=True, local=["delta", "y0[prey]"],
                         sensitivity=sensitivity, solver=solver, **TIGHT)
    assert other.labels == objective.labels
    error = _column_error(other.jacobian(x_off), objective.jacobian(x_off))
    assert np.all(error < 1e-5), error


def test_results_are_copies(objective, x_off):
    r = objective.residuals(x_off)
    jac = objective.jacobian(x_off)
    expected_r, expected_jac = r.copy(), jac.copy()
    r[:] = 0.0
    jac[:] = 0.0
    np.testing.assert_array_equal(objective.residuals(x_off), expected_r)
    np.testing.assert_array_equal(objective.jacobian(x_off), expected_jac)


def test_residuals_vanish_at_the_truth_of_exact_data(lv):
    data = pe.Data(T, _reference(lv), sigma=0.01)
    objective = pe.Objective(lv, data)
    assert objective.labels == LV_NAMES["param_names"]
    # the default solves (rtol 1e-8) against a 1e-12 reference, in units of sigma = 0.01
    assert np.max(np.abs(objective.residuals(list(LV_P)))) < 1e-4
    assert objective.loss(list(LV_P)) < 1e-8


# ----------------------------------------------------------------------------------------
# observables


@pytest.fixture(scope="module")
def scaled_data(lv_scaled):
    y = _reference(lv_scaled, p=[*LV_P, 2.0])
    return pe.Data(T, np.vstack([2.0 * y[1], y[0] + y[1]]), sigma=0.01)


def test_observe_residuals_and_jacobian(lv_scaled, scaled_data):
    objective = pe.Objective(lv_scaled, scaled_data, observe=scaled_and_total, free_y0=True,
                             **TIGHT)
    assert objective.labels == ["alpha", "beta", "gamma", "delta", "s", "y0[prey]",
                                "y0[predator]"]
    x_true = np.array([*LV_P, 2.0, *LV_Y0])
    assert np.max(np.abs(objective.residuals(x_true))) < 1e-7
    x = x_true * np.linspace(0.95, 1.05, x_true.size)
    jac = objective.jacobian(x)
    error = _column_error(jac, _central_jacobian(objective, x))
    assert np.all(error < 1e-6), dict(zip(objective.labels, error, strict=True))
    # the scale enters only the first observable: d out[0] / d s = y[1] / sigma
    states = pe.solve(lv_scaled, t_eval=T, p=x[:5], y0=x[5:], **TIGHT).y
    column = objective.labels.index("s")
    np.testing.assert_allclose(np.sort(jac[:, column]),
                               np.sort(np.concatenate([states[1] / 0.01, np.zeros(T.size)])),
                               rtol=1e-9, atol=1e-9)


def test_observe_that_is_not_complex_step_safe(lv_scaled, scaled_data):
    with pytest.warns(ComplexStepWarning, match="not complex-step safe"):
        objective = pe.Objective(lv_scaled, scaled_data, observe=abs_observable, **TIGHT)
    x = np.array([1.4, 1.1, 2.9, 1.05, 1.9])
    jac = objective.jacobian(x)
    # central differences inside (the observation) and outside (the check): ~1e-5
    error = _column_error(jac, _central_jacobian(objective, x))
    assert np.all(error < 1e-5), dict(zip(objective.labels, error, strict=True))
    # and the same as the analytic observable (abs of a positive state is the identity)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComplexStepWarning)
        smooth = pe.Objective(lv_scaled, scaled_data, observe=scaled_and_total, **TIGHT)
    assert np.all(_column_error(jac, smooth.jacobian(x)) < 1e-5)
    np.testing.assert_allclose(objective.residuals(x), smooth.residuals(x), rtol=1e-12)


def test_observe_reading_a_local_parameter(lv_scaled):
    """Each experiment has its own scale s (local): the observation's direct dependence on
    p goes to that experiment's column only."""
    y = _reference(lv_scaled, p=[*LV_P, 2.0])
    experiments = [
        pe.Data(T, np.vstack([2.0 * y[1], y[0] + y[1]]), sigma=0.01, name="a"),
        pe.Data(T, np.vstack([3.0 * y[1], y[0] + y[1]]), sigma=0.01, name="b", p={"s": 3.0}),
    ]
    objective = pe.Objective(lv_scaled, experiments, observe=scaled_and_total, local="s",
                             **TIGHT)
    assert objective.labels == ["alpha", "beta", "gamma", "delta", "s[a]", "s[b]"]
    np.testing.assert_array_equal(objective.x0, [*LV_P, 2.0, 3.0])
    assert np.max(np.abs(objective.residuals(objective.x0))) < 1e-7
    x = objective.x0 * 1.05
    error = _column_error(objective.jacobian(x), _central_jacobian(objective, x))
    assert np.all(error < 1e-6), dict(zip(objective.labels, error, strict=True))


# ----------------------------------------------------------------------------------------
# gradients by the adjoint

#: The discrete adjoint and forward sensitivities riding on the states' steps
#: (error_control=False) both differentiate the same discrete solution, so their gradients
#: agree to rounding (measured 1e-15 .. 1e-14); this leaves room for the accumulation order
#: and nothing for a missing term.
ADJOINT_AGREEMENT = 1e-8


def _relative_error(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _forward_and_adjoint(problem, data, adjoint=None, **kwargs):
    forward = pe.Objective(problem, data, sensitivity=pe.Forward(error_control=False),
                           **kwargs)
    adjoint = pe.Objective(problem, data, sensitivity=adjoint or pe.DiscreteAdjoint(),
                           **kwargs)
    return forward, adjoint


@pytest.mark.parametrize("adjoint", [pe.DiscreteAdjoint(), pe.DiscreteAdjoint(checkpoints=3)],
                         ids=["stored", "checkpointed"])
def test_adjoint_gradient_equals_the_forward_one(lv, experiments, adjoint):
    """Two experiments with their own conditions; shared and local parameters, shared and
    local initial states; log and log10 scales."""
    scale = ["log", "lin", "log10", "lin", "log", "log", "log10", "lin"]
    forward, objective = _forward_and_adjoint(
        lv, experiments, adjoint, free_y0=True, local=["delta", "y0[prey]"], scale=scale,
        **TIGHT,
    )
    assert objective.gradient_sensitivity == [adjoint, adjoint]
    x = forward.x0 * np.linspace(0.9, 1.1, forward.n_free)
    value, gradient = objective.value_and_grad(x)
    assert objective.last_gradient_sensitivity is adjoint
    expected_value, expected = forward.value_and_grad(x)
    assert isinstance(forward.last_gradient_sensitivity, pe.Forward)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert _relative_error(gradient, expected) < ADJOINT_AGREEMENT, (gradient, expected)
    # every column (the local ones of each experiment included) is far from zero
    assert np.all(np.abs(expected) > 1e-3 * np.abs(expected).max())
    # the adjoint's forward pass gives the residuals of a plain solve, and the Jacobian is
    # still forward sensitivities
    np.testing.assert_allclose(objective.residuals(x), forward.residuals(x), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(objective.jacobian(x), forward.jacobian(x))
    assert isinstance(objective.jacobian_sensitivity, pe.Forward)
    # on the optimiser's scale, d loss / dz = gradient * dx/dz, as differences of the loss
    z = objective.to_internal(x)
    along_z = gradient * objective.internal_derivative(x)
    central = np.empty_like(along_z)
    for i in range(z.size):
        up, down = z.copy(), z.copy()
        up[i] += 1e-5
        down[i] -= 1e-5
        central[i] = (objective.loss(objective.from_internal(up))
                      - objective.loss(objective.from_internal(down))) / 2e-5
    np.testing.assert_allclose(along_z, central, rtol=1e-6,
                               atol=1e-6 * np.abs(central).max())


@pytest.mark.parametrize("observe, agreement", [
    (scaled_and_total, ADJOINT_AGREEMENT),
    # central differences inside the observation, along other directions than the forward
    # path's (unit vectors instead of the sensitivities)
    (abs_observable, 1e-7),
], ids=["complex-step", "central-differences"])
def test_adjoint_gradient_through_an_observe(lv_scaled, observe, agreement):
    """The cotangent on the states is (dh/dy)^T r / sigma and each experiment's own scale s
    (local) gets the direct term (dh/ds)^T r / sigma: s does not enter the model, so its
    gradient is that term alone."""
    y = _reference(lv_scaled, p=[*LV_P, 2.0])
    rng = np.random.default_rng(3)
    noise = 0.01 * rng.standard_normal((2, T.size))
    experiments = [
        pe.Data(T, np.vstack([2.0 * y[1], y[0] + y[1]]) + noise, sigma=0.01, name="a"),
        pe.Data(T, np.vstack([3.0 * y[1], y[0] + y[1]]) - noise, sigma=[0.02, 0.01],
                name="b", p={"s": 3.0}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ComplexStepWarning)
        forward, objective = _forward_and_adjoint(
            lv_scaled, experiments, observe=observe, local="s", free_y0=["predator"], **TIGHT
        )
    x = objective.x0 * np.linspace(0.95, 1.05, objective.n_free)
    value, gradient = objective.value_and_grad(x)
    expected_value, expected = forward.value_and_grad(x)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert _relative_error(gradient, expected) < agreement, (gradient, expected)
    for label in ("s[a]", "s[b]"):
        column = objective.labels.index(label)
        assert abs(expected[column]) > 1e-3 * np.abs(expected).max()


def test_adjoint_gradient_with_gaps_replicates_and_sigma_per_value(lv):
    """Replicated times (their weights add up on one output), values not measured, one
    sigma per value, and an experiment that measures one state, named."""
    t = np.array([0.5, 1.0, 1.0, 1.0, 2.0, 2.5, 2.5, 3.5])
    rng = np.random.default_rng(11)
    y = _reference(lv, t=np.unique(t))[:, np.searchsorted(np.unique(t), t)]
    y = y + 0.03 * rng.standard_normal(y.shape)
    y[0, 1] = y[1, 3] = y[1, 6] = np.nan
    sigma = rng.uniform(0.01, 0.05, y.shape)
    experiments = [
        pe.Data(t, y, sigma=sigma, name="both"),
        pe.Data(t[::2], y[1:, ::2], sigma=0.02, name="predator only",
                observables=["predator"]),
    ]
    forward, objective = _forward_and_adjoint(lv, experiments, free_y0=["prey"], **TIGHT)
    assert objective.n_residuals == 13 + 3  # y[1, 6] is missing in both
    x = objective.x0 * np.linspace(1.1, 0.9, objective.n_free)
    value, gradient = objective.value_and_grad(x)
    expected_value, expected = forward.value_and_grad(x)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert _relative_error(gradient, expected) < ADJOINT_AGREEMENT, (gradient, expected)


@pytest.fixture(scope="module")
def chain():
    """A linear cascade of 16 states with 16 rates, every state measured at 10 times:
    enough gradient columns for sensitivity='auto' to take the adjoint in a fit (k >=
    max(16, n))."""
    spec = linear_chain_problem(16)
    problem = pe.ODEProblem(spec.fun, spec.y0, spec.t_span, spec.p)
    y = spec.exact()[0][:, 1:]
    rng = np.random.default_rng(2)
    return problem, pe.Data(spec.t_eval[1:], y * (1 + 0.01 * rng.standard_normal(y.shape)),
                            sigma=0.01 * y)


def test_auto_takes_the_adjoint_for_many_parameters(chain):
    problem, data = chain
    many = pe.Objective(problem, data, solver="Tsit5")
    assert many.sensitivity == "auto"
    [method] = many.gradient_sensitivity
    assert isinstance(method, pe.DiscreteAdjoint)
    x = many.x0 * np.linspace(0.8, 1.2, many.n_free)
    value, gradient = many.value_and_grad(x)
    assert many.last_gradient_sensitivity is method
    forward = pe.Objective(problem, data, solver="Tsit5",
                           sensitivity=pe.Forward(error_control=False))
    expected_value, expected = forward.value_and_grad(x)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert _relative_error(gradient, expected) < ADJOINT_AGREEMENT
    # the Jacobian stays forward sensitivities, and gradient() from a cached Jacobian is
    # J^T r
    jac = many.jacobian(x)
    assert many.gradient(x) == pytest.approx(jac.T @ many.residuals(x), rel=1e-12)
    assert isinstance(many.last_gradient_sensitivity, pe.Forward)


def test_auto_keeps_forward_sensitivities_for_few_parameters(chain):
    problem, data = chain
    few = pe.Objective(problem, data, solver="Tsit5", free=[0, 5])
    jacobian_method = few.jacobian_sensitivity
    assert isinstance(jacobian_method, pe.Forward) and not jacobian_method.error_control
    assert few.gradient_sensitivity[0] is jacobian_method
    x = few.x0 * 1.1
    value, gradient = few.value_and_grad(x)
    assert few.last_gradient_sensitivity is jacobian_method
    r, jac = few.residuals(x), few.jacobian(x)
    assert value == 0.5 * float(r @ r)
    np.testing.assert_array_equal(gradient, jac.T @ r)


def test_a_failed_adjoint_solve_is_reported_like_any_other():
    t = np.linspace(0.1, 1.0, 10)
    problem = pe.ODEProblem(blowup, [1.0], (0.0, 1.0), [0.5], param_names=["a"])
    objective = pe.Objective(problem, pe.Data(t, 1.0 / (1.0 - 0.5 * t), sigma=0.01),
                             sensitivity=pe.DiscreteAdjoint())
    assert objective.evaluate_gradient([1.5]) is None
    assert objective.failures == 1
    assert "failed at x = [1.5]" in objective.last_failure
    with pytest.raises(pe.SolveError, match=r"failed at x = \[1\.5\]"):
        objective.value_and_grad([1.5])
    value, gradient = objective.value_and_grad([0.4])
    # y = 1 / (1 - a t): d/da of 0.5 sum(r^2) = sum(r t / (1 - a t)^2) / sigma
    r = (1.0 / (1.0 - 0.4 * t) - 1.0 / (1.0 - 0.5 * t)) / 0.01
    assert value == pytest.approx(0.5 * float(r @ r), rel=1e-6)
    assert gradient[0] == pytest.approx(float(np.sum(r * t / (1.0 - 0.4 * t) ** 2)) / 0.01,
                                        rel=1e-6)


# ----------------------------------------------------------------------------------------
# failures and errors


@pytest.fixture(scope="module")
def blowup_objective():
    t = np.linspace(0.1, 1.0, 10)
    return pe.Objective(pe.ODEProblem(blowup, [1.0], (0.0, 1.0), [0.5], param_names=["a"]),
                        pe.Data(t, 1.0 / (1.0 - 0.5 * t), sigma=0.01))


@pytest.mark.parametrize("call", ["residuals", "jacobian", "loss", "gradient",
                                  "value_and_grad"])
def test_a_failed_solve_raises_solve_error(blowup_objective, call):
    # a = 1.5 blows up at t = 2/3, inside the data's times
    with pytest.raises(pe.SolveError, match=r"failed at x = \[1\.5\]"):
        getattr(blowup_objective, call)([1.5])
    # and the objective still works at a good point afterwards
    assert blowup_objective.loss([0.5]) < 1e-6


def test_bad_x(objective):
    with pytest.raises(ValueError, match=r"`x` must have 8 entries"):
        objective.residuals([1.0, 2.0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(solver="nope"), ValueError, "`solver`"),
        (dict(sensitivity="forward"), TypeError, "`sensitivity`"),
        (dict(free=["zeta"]), ValueError, "`free`"),
        (dict(free_y0=["wolf"]), ValueError, "`free_y0`"),
        (dict(local=["zeta"]), ValueError, "`local`"),
        (dict(local=["prey"]), ValueError, "`free_y0`"),  # local, but not estimated
        (dict(scale="ln"), ValueError, "`scale`"),
        (dict(scale=["log", "lin"]), ValueError, "`scale`"),
    ],
)
def test_bad_arguments(lv, experiments, kwargs, error, match):
    with pytest.raises(error, match=match):
        pe.Objective(lv, experiments, **kwargs)


def test_bad_data(lv):
    with pytest.raises(TypeError, match="`data`"):
        pe.Objective(lv, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"`p`.*'zeta'"):
        pe.Objective(lv, pe.Data(T, np.ones((2, T.size)), p={"zeta": 1.0}))
    with pytest.raises(ValueError, match=r"`y0` must have 2 entries"):
        pe.Objective(lv, pe.Data(T, np.ones((2, T.size)), y0=[1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="t_span"):
        pe.Objective(lv, pe.Data(T + 1.0, np.ones((2, T.size))))
    with pytest.raises(ValueError, match="distinct names"):
        same = pe.Data(T, np.ones((2, T.size)), name="X")
        pe.Objective(lv, [same, same], local="alpha")


GAIN = 2.0


def gain_observe(t, y, p, out):
    out[0] = GAIN * y[0]


def test_an_observe_whose_global_changed_is_refused():
    """observe is compiled with the values it reads from outside (like the model): after
    one of them changes, evaluating refuses instead of using the old value."""
    global GAIN
    problem = pe.ODEProblem(decay_for_stale_check, [1.0], (0.0, 1.0), [0.5])
    data = pe.Data([0.5, 1.0], [[1.5, 1.2]])
    objective = pe.Objective(problem, data, observe=gain_observe)
    objective.loss([0.5])
    try:
        GAIN = 3.0
        with pytest.raises(pe.ModelError, match="GAIN"):
            objective.loss([0.6])
    finally:
        GAIN = 2.0


def decay_for_stale_check(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]
