"""paramest.fit and FitResult: recovery of known parameters, standard errors against Monte
Carlo, experiments with shared and local entries, initial states, scales and bounds, missing
values and replicates, every optimiser, failed solves, an independent scipy reference,
observables, multistart, the result's statistics and report, callbacks and robust losses."""

import concurrent.futures
import math

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import solve_ivp
from scipy.optimize import OptimizeResult, least_squares

import paramest as pe
from tests.problems import LV_P, LV_Y0, linear_chain_problem, lotka_volterra

LV_NAMES = dict(param_names=["alpha", "beta", "gamma", "delta"],
                state_names=["prey", "predator"])
LV_T = np.linspace(0.5, 6.0, 12)
LV_SIGMA = 0.05
LV_START = [1.2, 0.8, 2.7, 1.2]
LV_BOUNDS = ([0.5, 0.3, 1.0, 0.3], [3.0, 3.0, 6.0, 3.0])
#: least-squares options that converge to rounding: the reference optimum of a data set
TIGHT_LSQ = dict(xtol=1e-14, ftol=1e-14, gtol=1e-14)

LOGISTIC_T = np.linspace(0.5, 10.0, 10)
LOGISTIC_P = (0.8, 2.0)
LOGISTIC_Y0 = 0.1
LOGISTIC_SIGMA = 0.05


def logistic(t, y, p, dydt):
    dydt[0] = p[0] * y[0] * (1.0 - y[0] / p[1])


def logistic_exact(t, r=LOGISTIC_P[0], K=LOGISTIC_P[1], y0=LOGISTIC_Y0):
    t = np.asarray(t, dtype=float)
    return K / (1.0 + (K / y0 - 1.0) * np.exp(-r * t))


def blowup(t, y, p, dydt):
    # y' = a y^2, y(0) = 1: y = 1 / (1 - a t), infinite at t = 1 / a; with t_span (0, 1)
    # every a >= 1 fails to solve
    dydt[0] = p[0] * y[0] * y[0]


def two_rates(t, y, p, dydt):
    # only the sum of the rates is determined by data
    dydt[0] = -(p[0] + p[1]) * y[0]


def scaled_and_total(t, y, p, out):
    out[0] = p[4] * y[1]
    out[1] = y[0] + y[1]


def _relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# ----------------------------------------------------------------------------------------
# fixtures (module scope: each model compiles once)


@pytest.fixture(scope="module")
def lv():
    return pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 6.0), LV_P, **LV_NAMES)


@pytest.fixture(scope="module")
def lv_exact(lv):
    sol = pe.solve(lv, t_eval=LV_T, rtol=1e-12, atol=1e-14)
    assert sol.success
    return sol.y


@pytest.fixture(scope="module")
def lv_data(lv_exact):
    rng = np.random.default_rng(1)
    return pe.Data(LV_T, lv_exact + LV_SIGMA * rng.standard_normal(lv_exact.shape),
                   sigma=LV_SIGMA)


@pytest.fixture(scope="module")
def lv_optimum(lv, lv_data):
    """The least-squares optimum of ``lv_data`` at the default solver tolerances."""
    result = pe.fit(lv, lv_data, x0=LV_START, options=TIGHT_LSQ)
    assert result.success, result.message
    return result


@pytest.fixture(scope="module")
def logistic_problem():
    return pe.ODEProblem(logistic, [LOGISTIC_Y0], (0.0, 10.0), LOGISTIC_P,
                         param_names=["r", "K"], state_names=["N"])


@pytest.fixture(scope="module")
def logistic_data():
    rng = np.random.default_rng(5)
    exact = logistic_exact(LOGISTIC_T)
    return pe.Data(LOGISTIC_T, exact + LOGISTIC_SIGMA * rng.standard_normal(exact.size),
                   sigma=LOGISTIC_SIGMA)


@pytest.fixture(scope="module")
def logistic_optimum(logistic_problem, logistic_data):
    result = pe.fit(logistic_problem, logistic_data, x0=[0.6, 1.5], options=TIGHT_LSQ)
    assert result.success, result.message
    return result


@pytest.fixture(scope="module")
def blowup_problem():
    return pe.ODEProblem(blowup, [1.0], (0.0, 1.0), [0.5], param_names=["a"])


@pytest.fixture(scope="module")
def blowup_data():
    t = np.linspace(0.1, 1.0, 10)
    rng = np.random.default_rng(0)
    return pe.Data(t, 1.0 / (1.0 - 0.5 * t) + 0.01 * rng.standard_normal(t.size), sigma=0.01)


@pytest.fixture(scope="module")
def blowup_optimum(blowup_problem, blowup_data):
    result = pe.fit(blowup_problem, blowup_data, x0=[0.3], options=TIGHT_LSQ)
    assert result.success and result.failures == 0, result.message
    return result


# ----------------------------------------------------------------------------------------
# recovery and uncertainty


def test_recovers_lotka_volterra_within_three_standard_errors(lv):
    t = np.linspace(0.25, 6.0, 24)
    exact = pe.solve(lv, t_eval=t, rtol=1e-12, atol=1e-14).y
    rng = np.random.default_rng(11)
    data = pe.Data(t, exact * (1.0 + 0.05 * rng.standard_normal(exact.shape)),
                   sigma=0.05 * exact)
    result = pe.fit(lv, data, x0=LV_START)
    assert result.success, result.message
    assert isinstance(result, pe.FitResult) and isinstance(result, OptimizeResult)
    assert result.labels == LV_NAMES["param_names"]
    assert result.failures == 0
    # with the true sigma each estimate is ~ normal(true, stderr): 3 stderr holds for each
    # with probability 0.997 (and this seed is fixed)
    z = (result.x - np.array(LV_P)) / result.stderr
    assert np.all(np.abs(z) < 3.0), z
    # ... and the uncertainty is a few percent, not vacuous
    assert np.all(result.stderr < 0.05 * np.array(LV_P)), result.stderr
    np.testing.assert_array_equal(result.p, result.x)
    np.testing.assert_array_equal(result.y0, LV_Y0)
    assert result.cost == pytest.approx(0.5 * float(result.residuals @ result.residuals))


@pytest.mark.parametrize("sigma_known", [True, False], ids=["sigma-known", "sigma-unknown"])
def test_stderr_matches_the_monte_carlo_spread(logistic_problem, sigma_known):
    """Refit 40 noisy data sets: the spread of the estimates is what stderr says. The
    sample standard deviation of 40 draws is itself uncertain by 1/sqrt(2 * 39) = 11 %, and
    the linearisation behind stderr adds a little, so 30 % is about 2.5 of those."""
    rng = np.random.default_rng(2024)
    exact = logistic_exact(LOGISTIC_T)
    estimates, stderrs = [], []
    for _ in range(40):
        y = exact + LOGISTIC_SIGMA * rng.standard_normal(exact.size)
        data = pe.Data(LOGISTIC_T, y, sigma=LOGISTIC_SIGMA if sigma_known else None)
        result = pe.fit(logistic_problem, data)
        assert result.success, result.message
        assert (result.nllh is not None) == sigma_known
        estimates.append(result.x)
        stderrs.append(result.stderr)
    spread = np.std(estimates, axis=0, ddof=1)
    reported = np.median(stderrs, axis=0)
    ratio = spread / reported
    assert np.all(np.abs(ratio - 1.0) < 0.3), (spread, reported)
    # the estimates centre on the truth (the mean of 40 is within 3 stderr / sqrt(40))
    bias = (np.mean(estimates, axis=0) - LOGISTIC_P) / (reported / math.sqrt(40))
    assert np.all(np.abs(bias) < 3.0), bias


def test_unknown_sigma_scales_the_covariance_by_the_residual_variance(logistic_problem,
                                                                      logistic_data,
                                                                      logistic_optimum):
    data = pe.Data(logistic_data.t, logistic_data.y)  # the same values, no sigma
    result = pe.fit(logistic_problem, data, x0=[0.6, 1.5], options=TIGHT_LSQ)
    known = logistic_optimum
    np.testing.assert_allclose(result.x, known.x, rtol=1e-9)
    assert result.nllh is None and known.nllh is not None
    np.testing.assert_allclose(result.cov, known.cov * known.chi2 / known.dof, rtol=1e-6)
    np.testing.assert_allclose(result.stderr, np.sqrt(np.diag(result.cov)), rtol=1e-12)
    # a Student's t interval with dof degrees of freedom
    q = stats.t.ppf(0.975, result.dof)
    np.testing.assert_allclose(result.ci, np.column_stack(
        [result.x - q * result.stderr, result.x + q * result.stderr]), rtol=1e-12)
    n, k = result.residuals.size, 2
    assert result.aic == pytest.approx(n * math.log(result.chi2 / n) + 2 * k, rel=1e-12)
    assert result.bic == pytest.approx(n * math.log(result.chi2 / n) + k * math.log(n),
                                       rel=1e-12)


# ----------------------------------------------------------------------------------------
# experiments, local entries, initial states


def test_local_parameter_takes_one_value_per_experiment(logistic_problem):
    """Two experiments share r, each has its own K."""
    first = pe.Data(LOGISTIC_T, logistic_exact(LOGISTIC_T, K=2.0), sigma=0.01, name="exp1")
    second = pe.Data(LOGISTIC_T, logistic_exact(LOGISTIC_T, K=3.0), sigma=0.01, name="exp2")
    result = pe.fit(logistic_problem, [first, second], local="K", x0=[0.6, 1.5, 2.5])
    assert result.success, result.message
    assert result.labels == ["r", "K[exp1]", "K[exp2]"]
    np.testing.assert_allclose(result.x, [0.8, 2.0, 3.0], rtol=1e-6)
    assert result.p.shape == (2, 2)
    np.testing.assert_allclose(result.p, [[0.8, 2.0], [0.8, 3.0]], rtol=1e-6)
    np.testing.assert_array_equal(result.y0, [LOGISTIC_Y0])  # shared: 1-D
    # predict per experiment, by index or name
    t = np.array([1.0, 5.0, 9.0])
    np.testing.assert_allclose(result.predict(t, experiment="exp2")[0],
                               logistic_exact(t, K=3.0), rtol=1e-6)
    np.testing.assert_allclose(result.predict(t, experiment=0)[0],
                               logistic_exact(t, K=2.0), rtol=1e-6)
    with pytest.raises(ValueError, match="`experiment`"):
        result.predict(t, experiment="exp3")


def test_all_local_is_the_same_as_separate_fits(logistic_problem):
    """With every entry local the experiments decouple: the joint optimum is each
    experiment's own, and the costs add up."""
    rng = np.random.default_rng(3)
    sets = [
        pe.Data(LOGISTIC_T, logistic_exact(LOGISTIC_T, r=r, K=K)
                + 0.05 * rng.standard_normal(LOGISTIC_T.size), sigma=0.05, name=name)
        for name, r, K in (("a", 0.8, 2.0), ("b", 1.1, 1.5))
    ]
    joint = pe.fit(logistic_problem, sets, local=["r", "K"], options=TIGHT_LSQ)
    assert joint.labels == ["r[a]", "K[a]", "r[b]", "K[b]"]
    separate = [pe.fit(logistic_problem, d, options=TIGHT_LSQ) for d in sets]
    np.testing.assert_allclose(joint.x, np.concatenate([s.x for s in separate]), rtol=1e-7)
    np.testing.assert_allclose(joint.stderr, np.concatenate([s.stderr for s in separate]),
                               rtol=1e-5)
    assert joint.cost == pytest.approx(sum(s.cost for s in separate), rel=1e-9)


def test_experiments_with_their_own_conditions(lv):
    """Three experiments: the problem's conditions, their own initial state (by name), their
    own delta (by name, as a full vector for the third); alpha, beta, gamma shared."""
    conditions = [
        (None, None, LV_P, LV_Y0),
        ({"prey": 2.0, "predator": 0.5}, None, LV_P, (2.0, 0.5)),
        (None, [1.5, 1.0, 3.0, 0.5], (1.5, 1.0, 3.0, 0.5), LV_Y0),
    ]
    experiments = []
    for k, (y0, p, p_true, y0_true) in enumerate(conditions):
        exact = pe.solve(lv, t_eval=LV_T, p=p_true, y0=y0_true, rtol=1e-12, atol=1e-14).y
        experiments.append(pe.Data(LV_T, exact, sigma=0.01, name=f"e{k}", y0=y0, p=p))
    result = pe.fit(lv, experiments, free=["alpha", "beta", "gamma"], x0=[1.3, 0.9, 2.8])
    assert result.success, result.message
    assert result.labels == ["alpha", "beta", "gamma"]
    np.testing.assert_allclose(result.x, LV_P[:3], rtol=1e-6)
    np.testing.assert_allclose(result.p, [LV_P, LV_P, (1.5, 1.0, 3.0, 0.5)], rtol=1e-6)
    np.testing.assert_array_equal(result.y0, [LV_Y0, (2.0, 0.5), LV_Y0])
    for k, (_, _, p_true, y0_true) in enumerate(conditions):
        expected = pe.solve(lv, t_eval=LV_T, p=p_true, y0=y0_true, rtol=1e-12, atol=1e-14).y
        np.testing.assert_allclose(result.predict(LV_T, experiment=k), expected, rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("free_y0, labels", [
    (True, ["r", "K", "y0[N]"]),
    (["N"], ["r", "K", "y0[N]"]),
    ([0], ["r", "K", "y0[N]"]),
])
def test_initial_state_estimation(logistic_problem, free_y0, labels):
    data = pe.Data(LOGISTIC_T, logistic_exact(LOGISTIC_T, y0=0.15), sigma=0.01)
    result = pe.fit(logistic_problem, data, free_y0=free_y0, x0=[0.6, 1.5, 0.1])
    assert result.success, result.message
    assert result.labels == labels
    np.testing.assert_allclose(result.x, [0.8, 2.0, 0.15], rtol=1e-6)
    np.testing.assert_allclose(result.y0, [0.15], rtol=1e-6)


def test_local_initial_state_and_parameter(lv):
    """The prey's initial count and delta differ by experiment; the rest is shared."""
    truths = [((1.5, 1.0, 3.0, 1.0), (1.0, 1.0)), ((1.5, 1.0, 3.0, 1.2), (1.5, 1.0))]
    experiments = [
        pe.Data(LV_T, pe.solve(lv, t_eval=LV_T, p=p, y0=y0, rtol=1e-12, atol=1e-14).y,
                sigma=0.01, name=name)
        for name, (p, y0) in zip(["e1", "e2"], truths, strict=True)
    ]
    result = pe.fit(lv, experiments, free_y0=["prey"], local=["delta", "y0[prey]"])
    assert result.success, result.message
    assert result.labels == ["alpha", "beta", "gamma", "delta[e1]", "y0[prey][e1]",
                             "delta[e2]", "y0[prey][e2]"]
    np.testing.assert_allclose(result.x, [1.5, 1.0, 3.0, 1.0, 1.0, 1.2, 1.5], rtol=1e-6)
    np.testing.assert_allclose(result.y0, [[1.0, 1.0], [1.5, 1.0]], rtol=1e-6)


# ----------------------------------------------------------------------------------------
# scales and bounds


@pytest.mark.parametrize("scale", ["log", "log10", ["log", "lin", "log10", "lin"]],
                         ids=["log", "log10", "mixed"])
def test_log_scales_reach_the_same_optimum(lv, lv_data, lv_optimum, scale):
    result = pe.fit(lv, lv_data, x0=LV_START, scale=scale, options=TIGHT_LSQ)
    assert result.success, result.message
    assert _relative(result.x, lv_optimum.x) < 1e-7
    # stderr, jac and cov are in natural units whatever the scale
    np.testing.assert_allclose(result.stderr, lv_optimum.stderr, rtol=1e-5)
    np.testing.assert_allclose(result.jac, lv_optimum.jac, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", ["lin", "log"])
@pytest.mark.parametrize("side", ["upper", "lower"])
def test_an_estimate_stops_at_its_bound(logistic_problem, logistic_data, scale, side):
    """The truth (r = 0.8) lies outside the box: r ends at the bound, K inside."""
    if side == "upper":
        bounds, x0, r_bound = ([0.1, 0.5], [0.6, 5.0]), [0.5, 1.5], 0.6
    else:
        bounds, x0, r_bound = ([1.0, 0.5], [3.0, 5.0]), [1.5, 1.5], 1.0
    result = pe.fit(logistic_problem, logistic_data, x0=x0, bounds=bounds, scale=scale)
    assert result.success, result.message
    assert result.x[0] == pytest.approx(r_bound, rel=1e-7)
    assert bounds[0][1] < result.x[1] < bounds[1][1]
    lines = {line.split()[0]: line for line in result.summary().splitlines()
             if line.strip() and line.split()[0] in result.labels}
    assert f"at {side} bound" in lines["r"]
    assert "bound" not in lines["K"]


def test_bounds_are_respected_by_every_bounded_method(lv, lv_data):
    upper = np.array([1.45, 3.0, 6.0, 3.0])  # alpha's optimum (1.4986) is above 1.45
    for method in ["trf", "dogbox", "L-BFGS-B", "TNC", "SLSQP", "trust-constr", "Powell"]:
        result = pe.fit(lv, lv_data, x0=[1.2, 0.8, 2.7, 1.2], method=method,
                        bounds=(LV_BOUNDS[0], upper))
        assert np.all(result.x <= upper * (1 + 1e-12)), (method, result.x)
        assert np.all(result.x >= np.array(LV_BOUNDS[0])), (method, result.x)
        assert result.x[0] == pytest.approx(1.45, rel=1e-4), (method, result.x)


# ----------------------------------------------------------------------------------------
# missing values and replicates


def test_missing_values_are_left_out(lv, lv_data):
    y = np.array(lv_data.y)
    missing = [(0, 2), (1, 2), (1, 7), (0, 11)]
    for row, col in missing:
        y[row, col] = np.nan
    result = pe.fit(lv, pe.Data(LV_T, y, sigma=LV_SIGMA), x0=LV_START, options=TIGHT_LSQ)
    assert result.success, result.message
    n_measured = 2 * LV_T.size - len(missing)
    assert result._objective.n_residuals == n_measured
    assert result.residuals.shape == (n_measured,) and np.all(np.isfinite(result.residuals))
    assert result.dof == n_measured - 4
    # the same as the fit to the measured values alone: time 2 dropped entirely, and each
    # state's own values with the rest
    keep = np.ones(LV_T.size, dtype=bool)
    keep[[2]] = False
    reduced = y[:, keep]
    reference = pe.fit(lv, pe.Data(LV_T[keep], reduced, sigma=LV_SIGMA), x0=LV_START,
                       options=TIGHT_LSQ)
    assert reference.residuals.size == n_measured
    assert _relative(result.x, reference.x) < 1e-7
    assert result.cost == pytest.approx(reference.cost, rel=1e-8)


def test_replicates_are_the_fit_to_their_mean(logistic_problem):
    """Two replicates at each time weigh like their mean with sigma / sqrt(2): the same
    optimum and stderr; the cost adds the spread of the replicates."""
    rng = np.random.default_rng(9)
    exact = logistic_exact(LOGISTIC_T)
    r1 = exact + LOGISTIC_SIGMA * rng.standard_normal(exact.size)
    r2 = exact + LOGISTIC_SIGMA * rng.standard_normal(exact.size)
    # replicates given in any order
    t = np.concatenate([LOGISTIC_T, LOGISTIC_T[::-1]])
    replicates = pe.Data(t, np.concatenate([r1, r2[::-1]]), sigma=LOGISTIC_SIGMA)
    mean = pe.Data(LOGISTIC_T, 0.5 * (r1 + r2), sigma=LOGISTIC_SIGMA / math.sqrt(2.0))
    a = pe.fit(logistic_problem, replicates, options=TIGHT_LSQ)
    b = pe.fit(logistic_problem, mean, options=TIGHT_LSQ)
    assert a.success and b.success
    assert a.residuals.size == 20 and b.residuals.size == 10
    assert _relative(a.x, b.x) < 1e-9
    np.testing.assert_allclose(a.stderr, b.stderr, rtol=1e-7)
    spread = float(np.sum((r1 - r2) ** 2) / (4.0 * LOGISTIC_SIGMA**2))
    assert a.cost == pytest.approx(b.cost + spread, rel=1e-9)


# ----------------------------------------------------------------------------------------
# every method


#: how close each method gets to the least-squares optimum (relative, in x): least squares
#: stops on its xtol of 1e-8 (measured 8e-9 here); quasi-Newton and SQP methods on their
#: gradient tolerance (measured 1e-11 .. 3e-7); the derivative-free ones on their own x
#: tolerance (measured 1e-6 .. 1e-5)
METHOD_TOLERANCE = {"trf": 1e-7, "lm": 1e-7, "dogbox": 1e-7, "L-BFGS-B": 2e-6,
                    "BFGS": 2e-6, "trust-constr": 2e-6, "TNC": 2e-6, "SLSQP": 2e-6,
                    "Nelder-Mead": 1e-4, "Powell": 1e-4}
#: BFGS's default gtol (1e-5 on the gradient's largest entry) is absolute: the Hessian of
#: this cost has eigenvalues up to ~1e6, so it asks for x within ~1e-11, where the cost
#: changes in its 16th digit and scipy reports "precision loss". 1e-3 is x within ~1e-9.
METHOD_OPTIONS = {"BFGS": dict(gtol=1e-3)}


def _cost_excess_bound(optimum, relative_error):
    """How much higher than the optimum's the cost may be at an ``x`` within
    ``relative_error`` of it: cost - cost* = |J dx|^2 / 2 <= (s_max |dx|)^2 / 2."""
    s_max = np.linalg.norm(optimum.jac, 2)
    return 0.5 * (s_max * relative_error * np.linalg.norm(optimum.x)) ** 2


@pytest.mark.parametrize("method", list(METHOD_TOLERANCE))
def test_every_local_method_reaches_the_optimum_on_lotka_volterra(lv, lv_data, lv_optimum,
                                                                  method):
    bounds = LV_BOUNDS if method == "TNC" else None  # TNC with and the rest without
    result = pe.fit(lv, lv_data, x0=LV_START, method=method, bounds=bounds,
                    options=METHOD_OPTIONS.get(method))
    assert result.success, (method, result.message)
    assert result.method == method
    # four parameters: forward sensitivities give the Jacobian or gradient, riding on the
    # states' steps; the derivative-free methods use none
    if method in ("Nelder-Mead", "Powell"):
        assert result.sensitivity is None
    else:
        assert isinstance(result.sensitivity, pe.Forward), result.sensitivity
        assert not result.sensitivity.error_control
    error = _relative(result.x, lv_optimum.x)
    assert error < METHOD_TOLERANCE[method], (method, error, result.x)
    # not below the optimum (beyond rounding), and above it only as far as x is off
    excess = result.cost - lv_optimum.cost
    assert -1e-12 * lv_optimum.cost < excess
    assert excess <= _cost_excess_bound(lv_optimum, METHOD_TOLERANCE[method]), excess
    assert result.nfev + result.njev > 0


@pytest.mark.parametrize("method, options", [
    ("differential_evolution", dict(maxiter=30, popsize=8)),
    ("dual_annealing", dict(maxiter=50)),
])
def test_global_methods_reach_the_optimum(logistic_problem, logistic_data, logistic_optimum,
                                          method, options):
    result = pe.fit(logistic_problem, logistic_data, method=method, bounds=([0.1, 0.5],
                    [3.0, 10.0]), seed=4, options=options)
    assert result.success, result.message
    # polished by trf (default xtol 1e-8): to about its own accuracy
    assert _relative(result.x, logistic_optimum.x) < 1e-6
    assert result.cost == pytest.approx(logistic_optimum.cost, rel=1e-10)


def test_global_method_messages_are_plain_text(logistic_problem, logistic_data):
    result = pe.fit(logistic_problem, logistic_data, method="dual_annealing",
                    bounds=([0.1, 0.5], [3.0, 10.0]), seed=4, options=dict(maxiter=20))
    # scipy's dual_annealing gives its message as a list: not "['Maximum number ...']"
    assert not result.message.startswith("["), result.message


def test_global_methods_are_reproducible_with_a_seed(logistic_problem, logistic_data):
    runs = [pe.fit(logistic_problem, logistic_data, method="dual_annealing",
                   bounds=([0.1, 0.5], [3.0, 10.0]), seed=12,
                   options=dict(maxiter=10, polish=False)) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].x, runs[1].x)
    assert runs[0].history == runs[1].history


def test_adam_reaches_the_optimum(logistic_problem, logistic_data, logistic_optimum):
    result = pe.fit(logistic_problem, logistic_data, x0=[0.6, 1.5], method="adam",
                    scale="log", options=dict(maxiter=3000, learning_rate=0.02,
                                              decay=0.999))
    assert result.success, result.message
    # a first-order method with a decaying step: close, not to rounding
    assert _relative(result.x, logistic_optimum.x) < 1e-4
    assert result.cost == pytest.approx(logistic_optimum.cost, rel=1e-6)
    with pytest.raises(ValueError, match="`options`.*adam"):
        pe.fit(logistic_problem, logistic_data, method="adam", options=dict(rate=0.1))


# ----------------------------------------------------------------------------------------
# derivatives: forward sensitivities or the adjoint


@pytest.mark.parametrize("scale", ["lin", "log"])
def test_lbfgsb_with_the_adjoint_reaches_the_forward_optimum(lv, lv_data, lv_optimum, scale):
    """The adjoint's gradient equals the forward one to rounding, so L-BFGS-B takes the
    same path to the same optimum; the result says which gave its gradients."""
    forward_method, adjoint_method = pe.Forward(error_control=False), pe.DiscreteAdjoint()
    forward = pe.fit(lv, lv_data, x0=LV_START, method="L-BFGS-B", scale=scale,
                     sensitivity=forward_method)
    adjoint = pe.fit(lv, lv_data, x0=LV_START, method="L-BFGS-B", scale=scale,
                     sensitivity=adjoint_method)
    assert forward.success and adjoint.success, (forward.message, adjoint.message)
    assert forward.sensitivity is forward_method
    assert adjoint.sensitivity is adjoint_method
    assert _relative(adjoint.x, forward.x) < 1e-8, (adjoint.x, forward.x)
    assert _relative(adjoint.x, lv_optimum.x) < METHOD_TOLERANCE["L-BFGS-B"]
    assert adjoint.cost == pytest.approx(lv_optimum.cost, rel=1e-9)
    # the statistics still come from the forward Jacobian
    np.testing.assert_allclose(adjoint.stderr, lv_optimum.stderr, rtol=1e-4)


def test_adam_with_the_adjoint_follows_the_forward_path(logistic_problem, logistic_data,
                                                        logistic_optimum):
    options = dict(maxiter=3000, learning_rate=0.02, decay=0.999)
    results = [
        pe.fit(logistic_problem, logistic_data, x0=[0.6, 1.5], method="adam", scale="log",
               sensitivity=sensitivity, options=options)
        for sensitivity in (pe.Forward(error_control=False), pe.DiscreteAdjoint())
    ]
    forward, adjoint = results
    assert isinstance(forward.sensitivity, pe.Forward)
    assert isinstance(adjoint.sensitivity, pe.DiscreteAdjoint)
    # 3000 steps from gradients equal to rounding: the same iterates, nearly to rounding
    assert _relative(adjoint.x, forward.x) < 1e-9, (adjoint.x, forward.x)
    assert _relative(adjoint.x, logistic_optimum.x) < 1e-4
    assert adjoint.cost == pytest.approx(logistic_optimum.cost, rel=1e-6)


@pytest.fixture(scope="module")
def chain():
    """A linear cascade of 16 states and 16 rates, every state measured at 10 times:
    enough gradient columns for sensitivity='auto' to take the adjoint (k >= max(16, n))."""
    spec = linear_chain_problem(16)
    problem = pe.ODEProblem(spec.fun, spec.y0, spec.t_span, spec.p)
    y = spec.exact()[0][:, 1:]
    rng = np.random.default_rng(4)
    data = pe.Data(spec.t_eval[1:], y * (1 + 0.02 * rng.standard_normal(y.shape)),
                   sigma=0.02 * y)
    return problem, data


def test_auto_fits_many_parameters_with_the_adjoint(chain):
    problem, data = chain
    x0 = problem.p * np.linspace(0.7, 1.4, problem.n_params)
    reference = pe.fit(problem, data, x0=x0, scale="log", solver="Tsit5", options=TIGHT_LSQ)
    assert reference.success, reference.message
    assert isinstance(reference.sensitivity, pe.Forward)  # least squares: the Jacobian
    result = pe.fit(problem, data, x0=x0, method="L-BFGS-B", scale="log", solver="Tsit5")
    assert result.success, result.message
    assert isinstance(result.sensitivity, pe.DiscreteAdjoint)
    # measured 1e-8 in x (L-BFGS-B's default ftol) and 5e-12 in cost
    assert _relative(result.x, reference.x) < 1e-6, (result.x, reference.x)
    assert result.cost == pytest.approx(reference.cost, rel=1e-10)
    # and where the adjoint is not cheaper (two columns), forward sensitivities
    few = pe.fit(problem, data, x0=x0[:2], free=[0, 1], method="L-BFGS-B", solver="Tsit5")
    assert isinstance(few.sensitivity, pe.Forward) and not few.sensitivity.error_control


@pytest.mark.parametrize("method", ["trf", "lm", "dogbox"])
def test_least_squares_refuses_an_adjoint(unsolvable, unsolvable_data, method):
    # before any solve: the start point of this problem does not solve
    with pytest.raises(ValueError, match=rf"`sensitivity=DiscreteAdjoint.*method='{method}'"):
        pe.fit(unsolvable, unsolvable_data, method=method, sensitivity=pe.DiscreteAdjoint())


def test_scipy_least_squares_and_solve_ivp_agree(lv, lv_data):
    """An independent reference: scipy's least_squares on DOP853 solves at tight
    tolerances (its finite-difference Jacobian only slows it down)."""
    y = np.asarray(lv_data.y)

    def residuals(x):
        def rhs(t, state):
            out = np.empty(2)
            lotka_volterra(t, state, x, out)
            return out

        sol = solve_ivp(rhs, (0.0, 6.0), LV_Y0, method="DOP853", t_eval=LV_T, rtol=1e-10,
                        atol=1e-12)
        assert sol.success
        return ((sol.y - y) / LV_SIGMA).ravel()

    reference = least_squares(residuals, LV_START, xtol=1e-12, ftol=1e-12, gtol=1e-12)
    assert reference.success
    result = pe.fit(lv, lv_data, x0=LV_START, rtol=1e-10, atol=1e-12, options=TIGHT_LSQ)
    assert result.success, result.message
    # both solvers' errors (~1e-10 relative) move the optimum by about that much
    assert _relative(result.x, reference.x) < 1e-6
    assert result.cost == pytest.approx(reference.cost, rel=1e-8)


# ----------------------------------------------------------------------------------------
# failed solves


#: fits that meet the finite-time blow-up (a >= 1) on the way: Nelder-Mead's first simplex
#: holds a = 1.5; L-BFGS-B's first step from 0.9 overshoots; on log scale Levenberg-Marquardt
#: overshoots from 0.05; the annealer samples the whole box [0.1, 3]
FAILING_TRIALS = {
    "Nelder-Mead": dict(x0=[0.3], options=dict(initial_simplex=[[0.3], [1.5]])),
    "L-BFGS-B": dict(x0=[0.9]),
    "lm": dict(x0=[0.05], scale="log"),
    "dual_annealing": dict(bounds=(0.1, 3.0), seed=0, options=dict(maxiter=20)),
}


@pytest.mark.parametrize("method", list(FAILING_TRIALS))
def test_a_fit_survives_failed_solves(blowup_problem, blowup_data, blowup_optimum, method):
    result = pe.fit(blowup_problem, blowup_data, method=method, **FAILING_TRIALS[method])
    assert result.success, result.message
    assert result.failures > 0
    assert "failed" in result.message and "rejected" in result.message, result.message
    assert np.isfinite(result.cost) and np.all(np.isfinite(result.residuals))
    tolerance = 1e-4 if method == "Nelder-Mead" else 1e-6
    assert _relative(result.x, blowup_optimum.x) < tolerance
    assert f"failed solves {result.failures}" in result.summary()


def test_a_fit_cannot_start_where_the_solve_fails(blowup_problem, blowup_data):
    with pytest.raises(pe.SolveError, match=r"fit cannot start.*x = \[1\.5\].*blow up"):
        pe.fit(blowup_problem, blowup_data, x0=[1.5])


@pytest.mark.parametrize("method, kwargs", [
    ("SLSQP", dict(x0=[0.1], scale="log")),
    ("SLSQP", dict(x0=[0.1])),
    ("BFGS", dict(x0=[0.1], scale="log")),
    ("TNC", dict(x0=[0.05], scale="log")),
    ("trust-constr", dict(x0=[0.01])),
    ("Powell", dict(x0=[0.95])),
])
def test_success_is_never_claimed_without_a_finite_cost(blowup_problem, blowup_data, method,
                                                        kwargs):
    """Fits that wander into the blow-up: whatever they end with, a success has a finite
    cost and residuals, and an estimate whose final solve fails says so (status -10)."""
    result = pe.fit(blowup_problem, blowup_data, method=method, **kwargs)
    assert not (result.success and not np.isfinite(result.cost)), result.message
    if result.success:
        assert np.all(np.isfinite(result.residuals))
    if not np.isfinite(result.cost):
        assert result.status == -10 and not result.success
        assert "final estimate failed" in result.message
        assert result.residuals is None
        assert np.all(np.isnan(result.stderr))
    assert "a" in result.summary()


# ----------------------------------------------------------------------------------------
# observables


def test_scaled_and_summed_observables(lv):
    """The data are s * predator (s an unknown scale, estimated) and prey + predator."""
    problem = pe.ODEProblem(lotka_volterra, LV_Y0, (0.0, 6.0), [*LV_P, 1.0],
                            param_names=[*LV_NAMES["param_names"], "s"],
                            state_names=LV_NAMES["state_names"])
    states = pe.solve(lv, t_eval=LV_T, rtol=1e-12, atol=1e-14).y
    rng = np.random.default_rng(4)
    observed = np.vstack([2.0 * states[1], states[0] + states[1]])
    data = pe.Data(LV_T, observed + 0.02 * rng.standard_normal(observed.shape), sigma=0.02)
    result = pe.fit(problem, data, observe=scaled_and_total, x0=[1.3, 0.9, 2.8, 1.1, 1.7])
    assert result.success, result.message
    assert result.labels == ["alpha", "beta", "gamma", "delta", "s"]
    z = (result.x - np.array([*LV_P, 2.0])) / result.stderr
    assert np.all(np.abs(z) < 3.0), z
    # predict gives the observables
    prediction = result.predict(LV_T)
    fitted = pe.solve(problem, t_eval=LV_T, p=result.x, rtol=1e-12, atol=1e-14).y
    np.testing.assert_allclose(prediction, [result.x[4] * fitted[1], fitted[0] + fitted[1]],
                               rtol=1e-6)
    # the residuals are those of the observables
    np.testing.assert_allclose(np.sort(result.residuals),
                               np.sort(((prediction - data.y) / 0.02).ravel()), atol=1e-4)


def test_named_rows_measure_those_states(lv, lv_exact):
    """Without observe, rows named after states measure those states, in any order."""
    data = pe.Data(LV_T, lv_exact[1], sigma=0.01, observables=["predator"])
    result = pe.fit(lv, data, x0=[1.4, 0.9, 2.9, 1.1])
    assert result.success, result.message
    np.testing.assert_allclose(result.x, LV_P, rtol=1e-5)
    assert result.predict(LV_T).shape == (1, LV_T.size)
    np.testing.assert_allclose(result.predict(LV_T)[0], lv_exact[1], rtol=1e-6)
    swapped = pe.Data(LV_T, lv_exact[::-1], sigma=0.01, observables=["predator", "prey"])
    result = pe.fit(lv, swapped, x0=[1.4, 0.9, 2.9, 1.1])
    np.testing.assert_allclose(result.x, LV_P, rtol=1e-6)
    np.testing.assert_allclose(result.predict(LV_T), lv_exact[::-1], rtol=1e-6)


# ----------------------------------------------------------------------------------------
# input errors: each raised before any solve (the problem's own p blows up, so a solve
# first would raise SolveError instead), naming the argument


@pytest.fixture(scope="module")
def unsolvable():
    """The blow-up model with a = 5 (infinite at t = 0.2): every default solve fails."""
    return pe.ODEProblem(blowup, [1.0], (0.0, 1.0), [5.0], param_names=["a"],
                         state_names=["y"])


@pytest.fixture(scope="module")
def unsolvable_data():
    return pe.Data([0.5, 1.0], [1.0, 2.0], sigma=0.1)


@pytest.mark.parametrize("kwargs, match", [
    pytest.param(dict(x0=[2.0], bounds=(0.1, 1.0)), r"`x0`.*outside its bounds",
                 id="x0-outside-bounds"),
    pytest.param(dict(x0=[1.0, 2.0]), r"`x0` must have 1 entries", id="x0-length"),
    pytest.param(dict(x0=[np.nan]), r"`x0`.*finite", id="x0-nan"),
    pytest.param(dict(bounds=([0.0, 0.0], [1.0, 1.0])), r"`bounds`.*1 values",
                 id="bounds-length"),
    pytest.param(dict(bounds=(7.0, 6.0)), r"`bounds`.*below", id="bounds-crossed"),
    pytest.param(dict(free=["b"]), r"`free`.*'b'", id="free-unknown"),
    pytest.param(dict(free_y0=["z"]), r"`free_y0`.*'z'", id="free_y0-unknown"),
    pytest.param(dict(local=["b"]), r"`local`.*'b'", id="local-unknown"),
    pytest.param(dict(scale="log", bounds=(0.0, 10.0)), r"`bounds`.*log scale.*positive",
                 id="log-zero-bound"),
    pytest.param(dict(scale="log", x0=[-1.0]), r"`x0`.*positive on log scale",
                 id="log-negative-x0"),
    pytest.param(dict(scale="log", x0=[0.0]), r"`x0`.*positive on log scale",
                 id="log-zero-x0"),
    pytest.param(dict(scale=["log", "lin"]), r"`scale`", id="scale-length"),
    pytest.param(dict(scale="exp"), r"`scale`", id="scale-unknown"),
    pytest.param(dict(method="nope"), r"`method`", id="method-unknown"),
    pytest.param(dict(loss="squared"), r"`loss`", id="loss-unknown"),
    pytest.param(dict(loss="soft_l1", method="L-BFGS-B"), r"`loss", id="loss-not-lsq"),
    pytest.param(dict(n_starts=0), r"`n_starts`", id="n_starts-zero"),
    pytest.param(dict(free=[]), r"nothing to estimate", id="nothing-free"),
    pytest.param(dict(method="differential_evolution"), r"`bounds`",
                 id="global-without-bounds"),
    pytest.param(dict(method="dual_annealing", bounds=(0.1, None)), r"`bounds`",
                 id="global-half-bounded"),
    pytest.param(dict(n_starts=3), r"`n_starts`.*`bounds`", id="n_starts-without-bounds"),
    pytest.param(dict(n_starts=3, bounds=(None, 6.0)), r"`n_starts`.*`bounds`",
                 id="n_starts-half-bounded"),
    pytest.param(dict(method="lm", bounds=(0.1, 10.0)), r"'lm'.*`bounds`",
                 id="lm-with-bounds"),
    pytest.param(dict(method="BFGS", bounds=(0.1, 10.0)), r"'BFGS'.*`bounds`",
                 id="BFGS-with-bounds"),
    pytest.param(dict(method="adam", options=dict(maxiter=0)), r"`options`",
                 id="adam-options"),
])
def test_bad_arguments_are_refused_before_any_solve(unsolvable, unsolvable_data, kwargs,
                                                    match):
    with pytest.raises(ValueError, match=match):
        pe.fit(unsolvable, unsolvable_data, **kwargs)


def test_bad_data_is_refused(unsolvable, unsolvable_data):
    with pytest.raises(ValueError, match=r"`data`.*t_span"):
        pe.fit(unsolvable, pe.Data([0.5, 2.0], [1.0, 2.0]))
    with pytest.raises(ValueError, match=r"observables.*1 states"):
        pe.fit(unsolvable, pe.Data([0.5, 1.0], [[1.0, 2.0], [1.0, 2.0]]))
    for sigma in (0.0, -0.1):
        with pytest.raises(ValueError, match="`sigma` must be positive"):
            pe.Data([0.5, 1.0], [1.0, 2.0], sigma=sigma)
    with pytest.raises(TypeError, match="`options`"):
        pe.fit(unsolvable, unsolvable_data, options=[("maxiter", 3)])
    with pytest.raises(TypeError, match="`callback`"):
        pe.fit(unsolvable, unsolvable_data, callback=3)


# ----------------------------------------------------------------------------------------
# multistart


@pytest.fixture(scope="module")
def multistart(lv, lv_data):
    return pe.fit(lv, lv_data, x0=LV_START, bounds=LV_BOUNDS, n_starts=4, seed=3)


def test_multistart_keeps_every_start_best_first(multistart, lv_optimum):
    assert multistart.success, multistart.message
    assert len(multistart.starts) == 4
    costs = [s.cost for s in multistart.starts if s.success]
    assert costs == sorted(costs)
    assert multistart.starts[0].success
    assert multistart.cost == min(costs) == multistart.starts[0].cost
    np.testing.assert_array_equal(multistart.x, multistart.starts[0].x)
    assert _relative(multistart.x, lv_optimum.x) < 1e-6
    assert multistart.message.startswith("best of 4 starts")
    assert multistart.nfev + multistart.njev == sum(s.nfev + s.njev for s in multistart.starts)
    # the first start is x0, the others inside the box
    for start in multistart.starts:
        assert np.all(start.x >= LV_BOUNDS[0]) and np.all(start.x <= LV_BOUNDS[1])


def test_multistart_on_an_executor_gives_the_same_result(lv, lv_data, multistart):
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        again = pe.fit(lv, lv_data, x0=LV_START, bounds=LV_BOUNDS, n_starts=4, seed=3,
                       executor=executor)
    np.testing.assert_array_equal(again.x, multistart.x)
    assert [s.cost for s in again.starts] == [s.cost for s in multistart.starts]


def test_multistart_on_a_process_pool_gives_the_same_result(lv, lv_data, multistart):
    """What a Dask client's executor needs: the work pickles (problems and objectives are
    rebuilt from their definitions in the worker, the compiled model loading from the
    on-disk cache) and the results come back with predict() working."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor:
        again = pe.fit(lv, lv_data, x0=LV_START, bounds=LV_BOUNDS, n_starts=4, seed=3,
                       executor=executor)
    np.testing.assert_allclose(again.x, multistart.x, rtol=1e-12)
    assert [s.success for s in again.starts] == [s.success for s in multistart.starts]
    np.testing.assert_allclose(again.predict(LV_T), multistart.predict(LV_T), rtol=1e-12)


def test_multistart_survives_start_points_that_fail(blowup_problem, blowup_data,
                                                    blowup_optimum):
    """Latin-hypercube starts in [0.1, 3]: those above 1 cannot be solved; they are failed
    starts, not the end of the fit (the default method, trf)."""
    result = pe.fit(blowup_problem, blowup_data, x0=[0.3], bounds=(0.1, 3.0), n_starts=4,
                    seed=0)
    assert result.success, result.message
    assert len(result.starts) == 4
    assert _relative(result.x, blowup_optimum.x) < 1e-6
    assert any(not s.success for s in result.starts)


# ----------------------------------------------------------------------------------------
# the result


def test_predict_matches_a_solve_at_the_estimate(lv, lv_optimum):
    t = np.array([3.0, 0.0, 1.0, 1.0, 6.0])  # any order, repeats, the ends of t_span
    expected = pe.solve(lv, t_eval=np.unique(t), p=lv_optimum.x, rtol=1e-8, atol=1e-10).y
    prediction = lv_optimum.predict(t)
    assert prediction.shape == (2, t.size)
    np.testing.assert_allclose(prediction, expected[:, [2, 0, 1, 1, 3]], rtol=1e-12)
    with pytest.raises(ValueError, match="`t`"):
        lv_optimum.predict([1.0, 7.0])


def test_statistics_of_the_result(lv_data, lv_optimum):
    result = lv_optimum
    n, k = 2 * LV_T.size, 4
    r = result.residuals
    assert r.shape == (n,)
    assert result.chi2 == pytest.approx(float(r @ r), rel=1e-14)
    assert result.cost == pytest.approx(0.5 * result.chi2, rel=1e-14)
    assert result.dof == n - k
    # the Gaussian negative log-likelihood: the formula on the residuals, and scipy's
    # normal density on the prediction and the data (a separate solve: to solver error)
    nllh = 0.5 * result.chi2 + n * math.log(LV_SIGMA) + 0.5 * n * math.log(2.0 * math.pi)
    assert result.nllh == pytest.approx(nllh, rel=1e-12)
    prediction = result.predict(LV_T)
    density = -np.sum(stats.norm.logpdf(np.asarray(lv_data.y), loc=prediction,
                                        scale=LV_SIGMA))
    assert result.nllh == pytest.approx(density, rel=1e-6)
    assert result.aic == pytest.approx(2.0 * nllh + 2.0 * k, rel=1e-12)
    assert result.bic == pytest.approx(2.0 * nllh + k * math.log(n), rel=1e-12)
    # covariance (J^T J)^-1, standard errors, correlations, 95 % normal intervals
    jac = result.jac
    assert jac.shape == (n, k)
    np.testing.assert_allclose(result.cov, np.linalg.inv(jac.T @ jac), rtol=1e-8)
    np.testing.assert_allclose(result.stderr, np.sqrt(np.diag(result.cov)), rtol=1e-14)
    np.testing.assert_allclose(np.diag(result.corr), 1.0, rtol=1e-12)
    assert np.all(np.abs(result.corr) <= 1.0 + 1e-12)
    q = stats.norm.ppf(0.975)
    np.testing.assert_allclose(result.ci[:, 0], result.x - q * result.stderr, rtol=1e-12)
    np.testing.assert_allclose(result.ci[:, 1], result.x + q * result.stderr, rtol=1e-12)
    assert result.identifiable


def test_nllh_with_sigma_per_observable(lv, lv_exact):
    sigma = np.array([0.03, 0.07])
    rng = np.random.default_rng(8)
    y = lv_exact + sigma[:, None] * rng.standard_normal(lv_exact.shape)
    y[1, 4] = np.nan
    result = pe.fit(lv, pe.Data(LV_T, y, sigma=sigma), x0=LV_START)
    prediction = result.predict(LV_T)
    measured = ~np.isnan(y)
    scale = np.broadcast_to(sigma[:, None], y.shape)[measured]
    nllh = 0.5 * result.chi2 + np.sum(np.log(scale)) + 0.5 * scale.size * math.log(2 * math.pi)
    assert result.nllh == pytest.approx(nllh, rel=1e-12)
    density = -np.sum(stats.norm.logpdf(y[measured], loc=prediction[measured], scale=scale))
    assert result.nllh == pytest.approx(density, rel=1e-6)


def test_summary_names_every_estimate_and_strong_correlations(lv_optimum, logistic_optimum):
    text = lv_optimum.summary()
    assert "success" in text and "trf" in text
    for label in lv_optimum.labels:
        assert f"  {label} " in text
    # alpha and delta are strongly correlated on this data
    strong = np.abs(lv_optimum.corr[np.triu_indices(4, 1)]).max()
    assert strong > 0.9
    assert "correlations" in text
    # logistic r and K are not (|corr| ~ 0.6): no correlation section
    assert np.abs(logistic_optimum.corr[0, 1]) < 0.9
    assert "correlations" not in logistic_optimum.summary()
    assert "nllh" in text and "aic" in text


def test_unidentifiable_parameters_are_reported():
    """Data determine only k1 + k2: the Jacobian is rank-deficient, stderr infinite, and the
    report says so (labels without param_names are p[i])."""
    problem = pe.ODEProblem(two_rates, [1.0], (0.0, 3.0), [0.3, 0.2])
    t = np.linspace(0.5, 3.0, 6)
    result = pe.fit(problem, pe.Data(t, np.exp(-0.5 * t) + 0.01 * np.sin(7.0 * t),
                                     sigma=0.01))
    assert result.labels == ["p[0]", "p[1]"]
    assert not result.identifiable
    assert np.all(np.isinf(result.stderr))
    assert np.isfinite(result.cost)
    assert "rank-deficient" in result.summary()


def test_a_backward_problem():
    """t_span runs backwards from the final state: the fit and predict (in any order of
    times) work on it as on a forward one."""
    problem = pe.ODEProblem(two_rates, [math.exp(-1.5)], (3.0, 0.0), [0.4, 0.2])
    t = np.linspace(0.5, 3.0, 6)
    result = pe.fit(problem, pe.Data(t, np.exp(-0.5 * t), sigma=0.01), free=[0])
    assert result.success, result.message
    np.testing.assert_allclose(result.x, [0.3], rtol=1e-6)
    times = np.array([2.0, 0.5, 3.0, 0.5, 1.0])
    np.testing.assert_allclose(result.predict(times)[0], np.exp(-0.5 * times), rtol=1e-6)


def test_plot_needs_matplotlib(lv_optimum, monkeypatch):
    try:
        import matplotlib
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            lv_optimum.plot()
        return
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = lv_optimum.plot()
    assert isinstance(figure, Figure)


# ----------------------------------------------------------------------------------------
# callback, history, progress


def test_callback_sees_each_evaluation_in_natural_units(lv, lv_data):
    seen = []
    result = pe.fit(lv, lv_data, x0=LV_START, scale="log",
                    callback=lambda x, cost: seen.append((x, cost)))
    assert result.success, result.message
    assert len(seen) == len(result.history) > 0
    assert [cost for _, cost in seen] == result.history
    objective = pe.Objective(lv, lv_data)
    for x, cost in seen[:3]:
        assert np.all(x > 0)
        # the same cost up to the solver's error (the fit may solve with sensitivities,
        # this without): rtol 1e-8 of values ~3 with sigma 0.05, over 24 residuals
        assert objective.loss(x) == pytest.approx(cost, rel=1e-6)
    # trf ends at its best evaluation
    assert min(result.history) == pytest.approx(result.cost, rel=1e-12)


@pytest.mark.parametrize("method", ["trf", "L-BFGS-B", "Nelder-Mead", "adam"])
def test_callback_stops_the_fit(lv, lv_data, method):
    costs = []

    def stop_at_three(x, cost):
        costs.append(cost)
        return len(costs) >= 3

    result = pe.fit(lv, lv_data, x0=LV_START, method=method, callback=stop_at_three)
    assert len(costs) == 3
    assert result.status == -11 and not result.success
    assert "callback" in result.message
    assert result.history == costs
    assert np.isfinite(result.cost)


def test_progress_bar_needs_tqdm(logistic_problem, logistic_data):
    try:
        import tqdm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="tqdm"):
            pe.fit(logistic_problem, logistic_data, progress=True)
        with pytest.raises(ImportError, match="tqdm"):
            pe.fit(logistic_problem, logistic_data, progress=True, n_starts=2,
                   bounds=(0.1, 10.0))
        return
    result = pe.fit(logistic_problem, logistic_data, progress=True)
    assert result.success
    result = pe.fit(logistic_problem, logistic_data, progress=True, n_starts=2,
                    bounds=(0.1, 10.0), seed=0)
    assert result.success


# ----------------------------------------------------------------------------------------
# robust loss


@pytest.mark.parametrize("loss", ["soft_l1", "huber"])  # the convex ones
def test_a_robust_loss_resists_an_outlier(lv, lv_data, lv_optimum, loss):
    y = np.array(lv_data.y)
    y[0, 5] += 3.0  # 60 sigma
    data = pe.Data(LV_T, y, sigma=LV_SIGMA)
    linear = pe.fit(lv, data, x0=LV_START)
    robust = pe.fit(lv, data, x0=LV_START, loss=loss)
    assert linear.success and robust.success
    # distance from the clean data's optimum and from the truth, in standard errors
    stderr = lv_optimum.stderr
    moved_linear = np.linalg.norm((linear.x - lv_optimum.x) / stderr)
    moved_robust = np.linalg.norm((robust.x - lv_optimum.x) / stderr)
    assert moved_robust < 0.5 * moved_linear, (moved_robust, moved_linear)
    assert np.linalg.norm(robust.x - LV_P) < np.linalg.norm(linear.x - LV_P)
    # cost is the plain least-squares cost; the robust one is what was minimised
    assert robust.robust_cost < robust.cost
    assert robust.cost > linear.cost


def test_optional_extras_missing_give_clear_errors(logistic_problem, logistic_data,
                                                   lv_optimum, monkeypatch):
    """Whatever is installed here: without tqdm or matplotlib the error says what to
    install (a None entry in sys.modules makes the import fail)."""
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        pe.fit(logistic_problem, logistic_data, progress=True)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="matplotlib"):
        lv_optimum.plot()
